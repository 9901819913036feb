"""One HDF5 file per shard: how every stage stores its images.

Layout: one group per image under ``/items/<image_id>``, holding named float32
(or uint8 for masks) datasets, chunked and compressed, and the image's
attributes (provenance as JSON, split, ...). File attributes hold the stage's
parameters, the software versions and the input hashes.

Files are written under a temporary name and renamed when complete
(:func:`xvertnet.io.atomic.atomic_path`): a killed job leaves nothing that looks finished.
A full disk ends the stage with one :class:`~xvertnet.errors.DiskFullError` naming the
shard, before HDF5 writes what would not fit (:func:`_check_space`), and no temporary.
HDF5 handles do not survive ``fork``: open files in the process that reads them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from xvertnet.errors import DiskFullError, InputFileError
from xvertnet.io.atomic import atomic_path, disk_full_reason
from xvertnet.io.content_hash import content_hash_path, write_content_hash
from xvertnet.provenance import software_record, to_json

ITEMS = "items"
#: The ROIs every image gets (:mod:`xvertnet.preprocessing.roi`): two to train on, two to evaluate on, upper and lower.
TRAIN_ROIS = ("train_upper", "train_lower")
EVAL_ROIS = ("eval_upper", "eval_lower")
ROI_NAMES = (*TRAIN_ROIS, *EVAL_ROIS)
#: Arrays up to this many elements (a 1024 x 1024 crop) are one chunk: one read per crop.
WHOLE_CHUNK_ELEMENTS = 1 << 20
#: Larger arrays (whole radiographs) are chunked in tiles of this edge.
CHUNK_EDGE = 256


#: Free space a shard keeps in hand beyond an image's uncompressed size (HDF5 metadata, the file's close).
HEADROOM = 1 << 20


class _Hdf5State:
    """Whether HDF5 can still be used in this process."""

    #: True once HDF5 failed to write (a disk filled by another process after the free-space check, a quota):
    #: the library's state is then unusable and its shutdown at exit crashes (segmentation fault), so the
    #: command line ends such a process without it (:func:`xvertnet.cli.main`).
    broken = False


HDF5_STATE = _Hdf5State()
#: HDF5 objects left open after a failed write: freeing them would retry the write (a traceback, then a crash).
_ABANDONED: list = []


def free_bytes(folder) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of ``folder`` (None where unknown)."""
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return stats.f_bavail * stats.f_frsize


def _check_space(target: Path, need: int, what: str) -> None:
    """Refuse, as a full disk, to start writing ``need`` bytes that the file system of ``target`` cannot take.

    HDF5 must not meet a full disk itself: it then loses the write in an object's destructor (the shard would
    look complete), and its state is broken for the rest of the process. So a shard writes an image only when
    the free space exceeds the image's uncompressed size plus :data:`HEADROOM` (compressed data are smaller).
    """
    free = free_bytes(target.parent)
    if free is not None and free < need:
        raise DiskFullError(
            target, "no space left on device", f"({free / 1e6:.1f} MB free, {what} needs up to {need / 1e6:.1f} MB)"
        )


class ShardWriter:
    """Adds images to an open shard file; use :func:`open_shard_for_writing`."""

    def __init__(self, handle: h5py.File, compression_level: int, target: Path | None = None):
        self._handle = handle
        self._items = handle.require_group(ITEMS)
        self._level = compression_level
        self._target = Path(target if target is not None else handle.filename)
        self.count = 0
        #: input path -> sha256, stored as a file attribute when the shard is closed
        self.inputs: dict[str, str] = {}

    def add(self, image_id: str, arrays: dict[str, np.ndarray], attrs: dict | None = None) -> None:
        """Store the arrays of one image, with its attributes (JSON for non-scalars).

        The image is written through (flushed) before this returns; a full disk is a :class:`DiskFullError`
        naming the shard, raised before HDF5 writes when the free space shows it (:func:`_check_space`).
        """
        arrays = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
        _check_space(self._target, sum(array.nbytes for array in arrays.values()) + HEADROOM, f"image {image_id}")
        opened: list = []  # HDF5 objects of this image: kept alive if a write fails (see _close_unless_broken)
        try:
            group = self._items.create_group(image_id)
            opened.append(group)
            for name, array in arrays.items():
                if not array.ndim:
                    chunks = None
                elif array.size <= WHOLE_CHUNK_ELEMENTS:
                    chunks = array.shape
                else:
                    chunks = tuple(min(CHUNK_EDGE, s) for s in array.shape)
                dataset = group.create_dataset(
                    name,
                    data=array,
                    chunks=chunks,
                    compression="lzf" if array.ndim else None,
                    compression_opts=None,
                    shuffle=False,  # float32 of radiographs: no smaller with the byte shuffle, and 2-3x slower
                    fletcher32=bool(array.ndim),  # a checksum per chunk: damage is found on reading, not used as data
                )
                opened.append(dataset)
                dataset.flush()  # a failed write raises here, not in the dataset's destructor
        except (OSError, RuntimeError) as error:
            reason = disk_full_reason(error)
            if reason is None:
                raise
            HDF5_STATE.broken = True
            _ABANDONED.extend([*opened, error])  # the error's frames hold what HDF5 created before it failed
            raise DiskFullError(self._target, reason) from None
        for key, value in (attrs or {}).items():
            group.attrs[key] = _attr_value(value)
        self.count += 1


def _attr_value(value):
    if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
        return value
    return to_json(value)


@contextlib.contextmanager
def open_shard_for_writing(
    path, *, stage: str, params: dict, upstream: dict | None = None, compression_level: int = 1
) -> Iterator[ShardWriter]:
    """Open a new shard file atomically; it appears at ``path`` only when the block completes.

    ``params`` (the stage's parameters), ``upstream`` (parameters of earlier stages the
    readers need, e.g. ``{"roi": {...}}``), the writer's ``inputs`` (input path ->
    sha256) and the software versions are stored as JSON file attributes.
    """
    _check_space(Path(path), HEADROOM, "a new shard")
    with atomic_path(path, suffix=".h5") as tmp:
        handle = h5py.File(tmp, "w")
        try:
            handle.attrs["stage"] = stage
            handle.attrs["params"] = to_json(params)
            handle.attrs["upstream"] = to_json(upstream or {})
            handle.attrs["software"] = to_json(software_record())
            writer = ShardWriter(handle, compression_level, Path(path))
            yield writer
            handle.attrs["inputs_sha256"] = to_json(writer.inputs)
            handle.attrs["count"] = writer.count
        except BaseException:
            _close_unless_broken(handle)
            raise
        try:
            handle.close()
        except (OSError, RuntimeError) as error:  # the last metadata did not fit
            reason = disk_full_reason(error)
            if reason is None:
                raise
            _close_unless_broken(handle, broken=True)
            raise DiskFullError(path, reason) from None
        content_hash_path(path).unlink(missing_ok=True)  # never a hash of the previous file beside the new one
    write_content_hash(path)


def _close_unless_broken(handle: h5py.File, *, broken: bool = False) -> None:
    """Close a shard being abandoned; after a failed HDF5 write, keep it open instead (closing, or freeing it, would
    retry the write and crash the library) and let the process end without HDF5 (:data:`HDF5_STATE`)."""
    if broken:
        HDF5_STATE.broken = True
    if HDF5_STATE.broken:
        _ABANDONED.append(handle)
    else:
        handle.close()


def read_shard(path) -> h5py.File:
    """Open a shard (any HDF5 file) for reading; a missing or foreign file is an :class:`InputFileError` naming it."""
    try:
        return h5py.File(path, "r")
    except OSError as error:
        path = Path(path)
        if path.is_dir():
            reason = "is a directory, not an HDF5 shard"
        elif not path.exists():
            reason = "no such file"
        elif "signature not found" in str(error):
            reason = "not an HDF5 file (no HDF5 signature)"
        else:
            reason = f"cannot open as HDF5: {error}"
        raise InputFileError(path, reason) from None


def item_ids(path) -> list[str]:
    """Image ids stored in a shard file, in storage order (sorted by HDF5)."""
    with read_shard(path) as handle:
        return list(handle[ITEMS].keys()) if ITEMS in handle else []


def read_item(
    path_or_handle, image_id: str, names: list[str] | None = None, optional=()
) -> tuple[dict[str, np.ndarray], dict]:
    """Read the arrays (all, or ``names`` and those of ``optional`` that the image has) and attributes of one image."""
    with _opened(path_or_handle) as handle:
        group = handle[ITEMS][image_id]
        keys = names if names is not None else dataset_names(group)
        keys = [*keys, *(name for name in optional if name in group and name not in keys)]
        missing = [name for name in keys if name not in group]
        if missing:
            stage = decode_attr(handle.file.attrs.get("stage", "unknown"))
            raise InputFileError(
                handle.file.filename,
                f"image {image_id} has no '{missing[0]}' (a shard of stage '{stage}'; "
                "is it the input this command expects?)",
            )
        arrays = {name: read_dataset(group, name) for name in keys}
        attrs = {key: decode_attr(value) for key, value in group.attrs.items()}
    return arrays, attrs


def read_dataset(group: h5py.Group, name: str) -> np.ndarray:
    """One stored array; a chunk whose checksum or compression fails is an :class:`InputFileError` naming the shard,
    the image and the array, and the command that rebuilds the shard."""
    try:
        return group[name][()]
    except OSError as error:
        raise InputFileError(
            group.file.filename, damaged_reason(f"{group.name.split('/')[-1]}/{name}", error, group.file.filename)
        ) from None


def damaged_reason(item: str, error: Exception, path) -> str:
    """The one line for a damaged stored array: what, why, and how to rebuild the file."""
    why = " ".join(str(error).split())
    return (
        f"'{item}' is damaged (checksum or decompression failed: {why}); rebuild the file: snakemake --force {path} "
        "(and `xvertnet verify` to find others)"
    )


def dataset_names(group: h5py.Group) -> list[str]:
    """Paths of every dataset below ``group`` (nested groups such as ``train_upper/Xp`` included)."""
    names: list[str] = []
    group.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def iter_items(path, names: list[str] | None = None, optional=()) -> Iterator[tuple[str, dict[str, np.ndarray], dict]]:
    """Yield (image_id, arrays, attrs) for every image of a shard, one at a time.

    The next image is read when the caller asks for it: a caller that holds one image at a time drops its
    reference to the previous arrays at the end of its loop body.
    """
    with read_shard(path) as handle:
        if ITEMS not in handle:
            return
        for image_id in handle[ITEMS].keys():
            yield (
                image_id,
                *read_item(handle, image_id, names, optional),
            )  # no reference kept here while the caller works


def file_attrs(path) -> dict:
    """The file-level attributes of a shard (params, inputs, software decoded from JSON)."""
    with read_shard(path) as handle:
        return {key: decode_attr(value) for key, value in handle.attrs.items()}


@contextlib.contextmanager
def _opened(path_or_handle):
    if isinstance(path_or_handle, (h5py.File, h5py.Group)):
        yield path_or_handle
    else:
        with read_shard(path_or_handle) as handle:
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
