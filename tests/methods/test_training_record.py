"""What a trained baseline's model.json says it saw (``trained_on``): the images of its training splits and their
patients, so that a study outside the workflow can refuse a model that saw one of its test patients."""

from __future__ import annotations

import numpy as np

from xvertnet.io.shard_store import open_shard_for_writing
from xvertnet.stages.train_baseline import training_images


def test_the_record_names_the_training_splits_images_their_patients_and_the_images_without_one(tmp_path):
    shard = tmp_path / "prep.h5"
    with open_shard_for_writing(shard, stage="prep", params={}) as writer:
        for image_id, split in (("a", "train"), ("b", "train"), ("c", "val"), ("d", "test")):
            writer.add(image_id, {"train_upper/X": np.zeros((4, 4), np.float32)}, {"split": split})
    with_patients = tmp_path / "demo.csv"
    with_patients.write_text(
        "image_id,path,source,bit_depth,split,patient\n"
        "a,a.png,ct-drr,12,train,p1\nc,c.png,ct-drr,12,val,p2\nd,d.png,ct-drr,12,test,p3\n"
    )
    without = tmp_path / "own.csv"  # own data: no patient column
    without.write_text("image_id,path,source,bit_depth,split\nb,b.png,own,16,train\n")
    manifests = {"demo": str(with_patients), "own": str(without)}

    record = training_images([shard], manifests)
    assert record == {
        "source": "project images",
        "splits": ["train"],
        "image_ids": ["a", "b"],
        "patients": ["p1"],
        "unmapped_image_ids": ["b"],
    }
    # a method that also reads the validation split (LED chooses its sampler's start there) names its patients too
    record = training_images([shard], manifests, ("train", "val"))
    assert record["image_ids"] == ["a", "b", "c"] and record["patients"] == ["p1", "p2"]
    assert training_images([shard], {"demo": str(with_patients)})["unmapped_image_ids"] == ["b"]
