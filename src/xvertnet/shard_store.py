"""One HDF5 file per shard: how every stage stores its images.

Layout: one group per image under ``/items/<image_id>``, holding named float32
(or uint8 for masks) datasets, chunked and compressed, and the image's
attributes (provenance as JSON, split, ...). File attributes hold the stage's
parameters, the software versions and the input hashes.

Files are written under a temporary name and renamed when complete
(:func:`xvertnet.atomic.atomic_path`): a killed job leaves nothing that looks finished.
HDF5 handles do not survive ``fork``: open files in the process that reads them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_path
from .provenance import software_record, to_json

ITEMS = "items"
#: The ROIs every image gets (:mod:`xvertnet.roi`): two to train on, two to evaluate on, upper and lower.
TRAIN_ROIS = ("train_upper", "train_lower")
EVAL_ROIS = ("eval_upper", "eval_lower")
ROI_NAMES = (*TRAIN_ROIS, *EVAL_ROIS)
#: Arrays up to this many elements (a 1024 x 1024 crop) are one chunk: one read per crop.
WHOLE_CHUNK_ELEMENTS = 1 << 20
#: Larger arrays (whole radiographs) are chunked in tiles of this edge.
CHUNK_EDGE = 256


class ShardWriter:
    """Adds images to an open shard file; use :func:`open_shard_for_writing`."""

    def __init__(self, handle: h5py.File, compression_level: int):
        self._handle = handle
        self._items = handle.require_group(ITEMS)
        self._level = compression_level
        self.count = 0
        #: input path -> sha256, stored as a file attribute when the shard is closed
        self.inputs: dict[str, str] = {}

    def add(self, image_id: str, arrays: dict[str, np.ndarray], attrs: dict | None = None) -> None:
        """Store the arrays of one image, with its attributes (JSON for non-scalars)."""
        group = self._items.create_group(image_id)
        for name, array in arrays.items():
            array = np.ascontiguousarray(array)
            if not array.ndim:
                chunks = None
            elif array.size <= WHOLE_CHUNK_ELEMENTS:
                chunks = array.shape
            else:
                chunks = tuple(min(CHUNK_EDGE, s) for s in array.shape)
            group.create_dataset(
                name,
                data=array,
                chunks=chunks,
                compression="gzip" if array.ndim else None,
                compression_opts=self._level if array.ndim else None,
                shuffle=bool(array.ndim),
            )
        for key, value in (attrs or {}).items():
            group.attrs[key] = _attr_value(value)
        self.count += 1


def _attr_value(value):
    if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
        return value
    return to_json(value)


@contextlib.contextmanager
def open_shard_for_writing(path, *, stage: str, params: dict, upstream: dict | None = None, compression_level: int = 4) -> Iterator[ShardWriter]:
    """Open a new shard file atomically; it appears at ``path`` only when the block completes.

    ``params`` (the stage's parameters), ``upstream`` (parameters of earlier stages the
    readers need, e.g. ``{"roi": {...}}``), the writer's ``inputs`` (input path ->
    sha256) and the software versions are stored as JSON file attributes.
    """
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.attrs["stage"] = stage
            handle.attrs["params"] = to_json(params)
            handle.attrs["upstream"] = to_json(upstream or {})
            handle.attrs["software"] = to_json(software_record())
            writer = ShardWriter(handle, compression_level)
            yield writer
            handle.attrs["inputs_sha256"] = to_json(writer.inputs)
            handle.attrs["count"] = writer.count


def item_ids(path) -> list[str]:
    """Image ids stored in a shard file, in storage order (sorted by HDF5)."""
    with h5py.File(path, "r") as handle:
        return list(handle[ITEMS].keys()) if ITEMS in handle else []


def read_item(path_or_handle, image_id: str, names: list[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Read the arrays (all, or ``names``) and attributes of one image."""
    with _opened(path_or_handle) as handle:
        group = handle[ITEMS][image_id]
        keys = names if names is not None else dataset_names(group)
        arrays = {name: group[name][()] for name in keys}
        attrs = {key: decode_attr(value) for key, value in group.attrs.items()}
    return arrays, attrs


def dataset_names(group: h5py.Group) -> list[str]:
    """Paths of every dataset below ``group`` (nested groups such as ``train_upper/Xp`` included)."""
    names: list[str] = []
    group.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def iter_items(path, names: list[str] | None = None) -> Iterator[tuple[str, dict[str, np.ndarray], dict]]:
    """Yield (image_id, arrays, attrs) for every image of a shard, one at a time."""
    with h5py.File(path, "r") as handle:
        if ITEMS not in handle:
            return
        for image_id in handle[ITEMS].keys():
            arrays, attrs = read_item(handle, image_id, names)
            yield image_id, arrays, attrs


def file_attrs(path) -> dict:
    """The file-level attributes of a shard (params, inputs, software decoded from JSON)."""
    with h5py.File(path, "r") as handle:
        return {key: decode_attr(value) for key, value in handle.attrs.items()}


@contextlib.contextmanager
def _opened(path_or_handle):
    if isinstance(path_or_handle, (h5py.File, h5py.Group)):
        yield path_or_handle
    else:
        with h5py.File(Path(path_or_handle), "r") as handle:
            yield handle


def decode_attr(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value
