"""What an XVertNet iteration trains on: the training crops of the prep (or refine) shards, as a torch data set,
and the fingerprint of that data recorded with the model."""

from __future__ import annotations

import dataclasses
import os

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from xvertnet.io.shard_store import ITEMS, TRAIN_ROIS, decode_attr, read_shard
from xvertnet.preprocessing.prep_shard import BONE_TARGET


@dataclasses.dataclass(frozen=True)
class CropRef:
    """One crop in a data shard: ``/items/<image_id>/<roi>/{Xp, X, Y}``."""

    shard: str
    image_id: str
    roi: str


def find_crops(shards, split: str, rois=TRAIN_ROIS) -> list[CropRef]:
    """Every crop of the images of ``split`` in the shards (reads attributes only)."""
    crops = []
    for shard in shards:
        with read_shard(shard) as handle:
            for image_id, group in handle.get(ITEMS, {}).items():
                if decode_attr(group.attrs.get("split", "")) == split:
                    crops += [CropRef(str(shard), image_id, roi) for roi in rois if roi in group]
    return crops


class CropDataset(Dataset):
    """Crops streamed from shard files; a sample is (inputs (C, H, W), hfc (1, H, W)) float32, and with
    ``with_bone`` the bone prior's target (1, H, W) as a third, NaN where the crop has none.

    File handles are opened lazily in the process that reads and dropped when the
    process id changes or the dataset is pickled: each worker has its own.
    """

    def __init__(self, crops: list[CropRef], inputs: tuple[str, ...] = ("Xp",), *, with_bone: bool = False):
        self.crops = list(crops)
        self.inputs = tuple(inputs)
        self.with_bone = with_bone
        self._handles: dict[str, h5py.File] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.crops)

    def _file(self, path: str) -> h5py.File:
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if path not in self._handles:
            self._handles[path] = read_shard(path)
        return self._handles[path]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        ref = self.crops[index]
        group = self._file(ref.shard)[ITEMS][ref.image_id][ref.roi]
        inputs = np.stack([group[name][()] for name in self.inputs]).astype(np.float32)
        hfc = group["Y"][()][None].astype(np.float32)
        if not self.with_bone:
            return torch.from_numpy(inputs), torch.from_numpy(hfc)
        bone = group[BONE_TARGET][()][None].astype(np.float32) if BONE_TARGET in group else np.full_like(hfc, np.nan)
        return torch.from_numpy(inputs), torch.from_numpy(hfc), torch.from_numpy(bone)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, None
        return state


def any_bone(crops: list[CropRef]) -> bool:
    """Whether any of ``crops`` has the bone prior's target (each shard opened once)."""
    by_shard: dict[str, list[CropRef]] = {}
    for ref in crops:
        by_shard.setdefault(ref.shard, []).append(ref)
    for shard, refs in by_shard.items():
        with read_shard(shard) as handle:
            if any(BONE_TARGET in handle[ITEMS][ref.image_id][ref.roi] for ref in refs):
                return True
    return False


def data_parameters(shards) -> dict:
    """The preprocessing and ROI parameters recorded in the first data shard (for the model's metadata)."""
    with read_shard(shards[0]) as handle:
        params = decode_attr(handle.attrs.get("params", "{}"))
        upstream = decode_attr(handle.attrs.get("upstream", "{}"))
    return {"prep": params.get("prep", params), "roi": upstream.get("roi", {})}
