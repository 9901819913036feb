"""A downloaded data set's manifest: its images with their patients, and train/val/test splits drawn by patient
(a patient's images never straddle splits; the draw is fixed by a seed)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pandas as pd

from xvertnet.io.datasets import write_manifest
from xvertnet.io.http_download import DownloadError


def _split_key(seed: int, patient: str) -> str:
    return hashlib.sha256(f"{seed}:{patient}".encode()).hexdigest()


def assign_splits(patients: pd.Series, split: dict, *, seed: int) -> pd.Series:
    """Split images by patient, deterministically from ``seed``.

    ``{"fractions": [train, val, test]}`` splits all patients; ``{"counts": [train, val,
    test]}`` samples that many images (whole patients, in seeded order); images beyond the
    counts get the split ``""`` (not used).
    """
    order = sorted(patients.unique(), key=lambda patient: _split_key(seed, patient))
    sizes = patients.value_counts()
    result = {}
    if "fractions" in split:
        fractions = split["fractions"]
        total = len(patients)
        bounds = [fractions[0] * total, (fractions[0] + fractions[1]) * total]
        running = 0
        for patient in order:
            result[patient] = "train" if running < bounds[0] else "val" if running < bounds[1] else "test"
            running += sizes[patient]
    else:
        targets = dict(zip(("train", "val", "test"), split["counts"]))
        filled = dict.fromkeys(targets, 0)
        for patient in order:
            name = next((n for n in ("train", "val", "test") if filled[n] < targets[n]), "")
            result[patient] = name
            if name:
                filled[name] += sizes[patient]
    return patients.map(result)


def build_manifest(
    root, entry: dict, dataset: str, out_path, *, seed: int = 0, split: dict | None = None
) -> pd.DataFrame:
    """Manifest of the images under ``root`` matching the registry layout, with seeded patient-level splits."""
    root, out_path = Path(root), Path(out_path)
    pattern = entry["images"] if entry["images"].startswith("**") else f"**/{entry['images']}"
    paths = sorted(root.glob(pattern))  # each archive unpacks into a folder of its own
    if not paths:
        raise DownloadError(f"{root}: no images match '{entry['images']}' (the {dataset} layout)")
    id_pattern = re.compile(entry["image_id"])
    patient_pattern = re.compile(entry["patient_id"]) if entry.get("patient_id") else None
    rows = []
    for path in paths:
        relative = path.relative_to(root).as_posix()
        found = id_pattern.search(relative)
        image_id = (found.group(1) if found else path.stem).replace("/", "_")
        patient = (
            patient_pattern.search(relative).group(1)
            if patient_pattern and patient_pattern.search(relative)
            else image_id
        )
        rows.append(
            {
                "image_id": image_id,
                "path": os.path.relpath(path, out_path.parent),
                "source": dataset,
                "bit_depth": "",
                "patient_id": patient,
            }
        )
    manifest = pd.DataFrame(rows)
    manifest["split"] = assign_splits(manifest["patient_id"], split or entry["split"], seed=seed)
    manifest = manifest[manifest["split"] != ""][["image_id", "path", "source", "bit_depth", "split", "patient_id"]]
    write_manifest(manifest, out_path)
    return manifest
