"""Applying trained XVertNet iterations: refine (training data of the next iteration) and enhance.

The chain (Sec. 3.4, Eq. 7): preprocess (Eqs. 1-6) -> f_1 -> HFC of its output (Eq. 6) ->
f_2 -> ... Iteration t's inputs are the previous output (``Xp``; for t = 1 the
preprocessed crop) and/or the original crop ``X``, as each model was trained.

* :func:`refine_shard` writes iteration t's data shard: per crop the original ``X``, the
  model's output as the next ``Xp`` and its recomputed HFC ``Y`` (the prep layout).
* :func:`enhance_rois_shard` runs any method (the chain, a baseline, the identity) on the
  evaluation ROIs and canonical whole images of a ROI shard (HDF5 and 16-bit PNG).
* :func:`enhance_file` enhances one image file of any size outside Snakemake (tiled with
  overlap and blending, bounded memory), writing a 16-bit PNG or a derived DICOM.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path
from .device import autocast, resolve_precision, select_device, to_device
from .errors import XvertnetError
from .model import XVertNet, pad_to_multiple
from .preprocess import PrepParams, high_frequency_components, preprocess
from .provenance import sha256_file
from .shard_store import file_attrs, iter_items, open_shard_for_writing
from .train import TRAIN_ROIS, load_model
from .wls import WlsParams

log = logging.getLogger(__name__)

EVAL_ROIS = ("eval_upper", "eval_lower")


def prep_params_from_record(record: dict) -> PrepParams:
    """Rebuild :class:`PrepParams` from the flat record stored in shards and models."""
    wls = WlsParams(lam=record["lambda"], alpha=record["alpha"], eps=record["eps"], log_floor=record["log_floor"],
                    solver=record["solver"], rtol=record["rtol"], fgs_iterations=record["fgs_iterations"],
                    fgs_lambda_factor=record["fgs_lambda_factor"])
    return PrepParams(wls=wls, e_floor=record["e_floor"], rescale_xp=record["rescale_xp"])


class Chain:
    """Trained iterations 1..T, applied in order; loads every model once."""

    def __init__(self, model_dirs, *, device: str = "auto", precision: str = "auto", batch_size: int = 8):
        model_dirs = [Path(d) for d in model_dirs]
        if not model_dirs:
            raise XvertnetError("enhance: no model directories given")
        self.device = select_device(device)
        self.dtype = resolve_precision(self.device, precision)
        self.batch_size = batch_size
        loaded = [load_model(d, self.device) for d in model_dirs]
        self.models: list[XVertNet] = [model for model, _ in loaded]
        self.metadata: list[dict] = [metadata for _, metadata in loaded]
        self.prep = prep_params_from_record(self.metadata[0]["data"]["prep"])
        self.canonical_height = self.metadata[0]["data"].get("roi", {}).get("canonical_height")
        self.model_dirs = model_dirs

    def describe(self) -> dict:
        return {"iterations": len(self.models), "models": [str(d) for d in self.model_dirs],
                "model_sha256": [m["model_sha256"] for m in self.metadata], "prep": self.prep.record()}

    @staticmethod
    def _inputs(metadata: dict, xp: np.ndarray, x: np.ndarray) -> np.ndarray:
        names = metadata["train"]["inputs"]
        return np.stack([{"Xp": xp, "X": x}[name] for name in names]).astype(np.float32)

    @torch.no_grad()
    def predict(self, model: XVertNet, inputs: np.ndarray, hfc: np.ndarray) -> np.ndarray:
        """Batched inference on (N, C, H, W) inputs and (N, 1, H, W) HFC; any H, W (padded)."""
        outputs = []
        for start in range(0, inputs.shape[0], self.batch_size):
            batch = torch.from_numpy(inputs[start : start + self.batch_size])
            guide = torch.from_numpy(hfc[start : start + self.batch_size])
            batch, (height, width) = pad_to_multiple(batch, model.config.multiple)
            guide, _ = pad_to_multiple(guide, model.config.multiple)
            with autocast(self.device, self.dtype):
                output, _ = model(to_device(batch, self.device), to_device(guide, self.device))
            outputs.append(output.float()[:, 0, :height, :width].cpu().numpy())
        return np.concatenate(outputs)

    def predict_tiled(self, model: XVertNet, inputs: np.ndarray, hfc: np.ndarray, *, tile: int, overlap: int) -> np.ndarray:
        """Inference on one large (C, H, W) image in overlapping tiles blended with a linear taper."""
        _, height, width = inputs.shape
        if height <= tile and width <= tile:
            return self.predict(model, inputs[None], hfc[None])[0]
        step = tile - overlap
        if step <= 0:
            raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
        ramp = np.minimum(np.arange(1, tile + 1), np.arange(tile, 0, -1)).astype(np.float32)
        ramp = np.minimum(ramp / max(overlap, 1), 1.0)
        window = np.outer(ramp, ramp) + 1e-3
        total = np.zeros((height, width), np.float32)
        weight = np.zeros((height, width), np.float32)
        tops = sorted({min(top, max(height - tile, 0)) for top in range(0, max(height - overlap, 1), step)})
        lefts = sorted({min(left, max(width - tile, 0)) for left in range(0, max(width - overlap, 1), step)})
        for top in tops:
            for left in lefts:
                patch = inputs[:, top : top + tile, left : left + tile]
                guide = hfc[:, top : top + tile, left : left + tile]
                output = self.predict(model, patch[None], guide[None])[0]
                w = window[: output.shape[0], : output.shape[1]]
                total[top : top + output.shape[0], left : left + output.shape[1]] += w * output
                weight[top : top + output.shape[0], left : left + output.shape[1]] += w
        return total / weight

    def run(self, x: np.ndarray, *, iterations: int | None = None, tile: int | None = None, overlap: int = 64) -> np.ndarray:
        """The chain on one crop or image X in [0, 1]: preprocess (Eqs. 1-6), then f_1, HFC, f_2, ..."""
        result = preprocess(x, self.prep)
        output, hfc = result["Xp"], result["Y"]
        for model, metadata in list(zip(self.models, self.metadata))[:iterations]:
            inputs = self._inputs(metadata, output, x)
            guide = hfc[None].astype(np.float32)
            if tile:
                output = self.predict_tiled(model, inputs, guide, tile=tile, overlap=overlap)
            else:
                output = self.predict(model, inputs[None], guide[None])[0]
            hfc = high_frequency_components(output, self.prep.wls).astype(np.float32)
        return output.astype(np.float32)


def refine_shard(model_dir, data_shard, out_path, *, rois=TRAIN_ROIS, device: str = "auto", batch_size: int = 8) -> int:
    """Apply model t to iteration t-1's data shard: the next iteration's ``Xp`` and recomputed ``Y`` (Eq. 6)."""
    chain = Chain([model_dir], device=device, batch_size=batch_size)
    metadata = chain.metadata[0]
    source = file_attrs(data_shard)
    params = {"prep": chain.prep.record(), "iteration": metadata["iteration"], "model_sha256": metadata["model_sha256"]}
    with open_shard_for_writing(out_path, stage="refine", params=params, upstream=source.get("upstream", {})) as shard:
        shard.inputs[str(data_shard)] = sha256_file(data_shard)
        for image_id, arrays, attrs in iter_items(data_shard):
            stored = {}
            present = [roi for roi in rois if f"{roi}/Xp" in arrays]
            if not present:
                continue
            inputs = np.stack([chain._inputs(metadata, arrays[f"{roi}/Xp"], arrays[f"{roi}/X"]) for roi in present])
            hfc = np.stack([arrays[f"{roi}/Y"][None] for roi in present]).astype(np.float32)
            outputs = chain.predict(chain.models[0], inputs, hfc)
            for roi, output in zip(present, outputs):
                stored[f"{roi}/X"] = arrays[f"{roi}/X"]
                stored[f"{roi}/Xp"] = output.astype(np.float32)
                stored[f"{roi}/Y"] = high_frequency_components(output, chain.prep.wls).astype(np.float32)
            shard.add(image_id, stored, {key: attrs[key] for key in ("split", "source", "boxes", "scale") if key in attrs})
        count = shard.count
    return count


def write_png16(path, image: np.ndarray) -> None:
    """A [0, 1] image as a 16-bit grey PNG, atomically."""
    from PIL import Image

    pixels = np.rint(np.clip(image, 0.0, 1.0) * 65535).astype(np.uint16)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def enhance_rois_shard(method: str, enhance_crop, roi_shard, out_path, png_dir, *, splits=("val", "test"),
                       enhance_whole=None, params: dict | None = None, per_image=None, whole: bool | None = None) -> int:
    """Any method on the evaluation ROIs (and, with ``enhance_whole``, the canonical whole image) of a ROI shard.

    ``enhance_crop`` and ``enhance_whole`` map a float [0, 1] image to an enhanced one of the
    same shape. Only images of ``splits`` are enhanced. Writes ``out_path`` (HDF5: per image
    ``eval_upper``, ``eval_lower`` and optionally ``whole``) and 16-bit PNGs into ``png_dir``.
    Every method goes through here, so the metrics stage treats them all alike.

    ``per_image(image_id)``, when given, returns ``(enhance_crop, enhance_whole, attrs)`` for
    that image (a method fitted to each image, such as internal learning); ``whole`` then
    says whether whole images are enhanced, and ``attrs`` are stored with the image.
    """
    png_dir = Path(png_dir)
    png_dir.mkdir(parents=True, exist_ok=True)
    whole = enhance_whole is not None if whole is None else whole
    names = [*EVAL_ROIS, "canonical"] if whole else list(EVAL_ROIS)
    with open_shard_for_writing(out_path, stage="enhance", params={"method": method, "splits": list(splits), **(params or {})}) as shard:
        shard.inputs[str(roi_shard)] = sha256_file(roi_shard)
        for image_id, arrays, attrs in iter_items(roi_shard, names=names):
            if attrs.get("split", "") not in splits:
                continue
            extra = {}
            if per_image is not None:
                enhance_crop, enhance_whole, extra = per_image(image_id)
            stored = {roi: np.clip(enhance_crop(arrays[roi]), 0.0, 1.0).astype(np.float32) for roi in EVAL_ROIS}
            if whole:
                stored["whole"] = np.clip(enhance_whole(arrays["canonical"]), 0.0, 1.0).astype(np.float32)
            for name, image in stored.items():
                if image.shape != (arrays["canonical"].shape if name == "whole" else arrays[name].shape):
                    raise XvertnetError(f"{method} changed the shape of {image_id}/{name}")
                write_png16(png_dir / f"{image_id}_{name}.png", image)
            shard.add(image_id, stored, {"split": attrs.get("split", ""), "boxes": attrs.get("boxes", {}), **extra})
            log.info("%s enhanced %s", method, image_id)
        count = shard.count
    return count


def enhance_file(model_dirs, in_path, out_path, *, iterations: int | None = None, device: str = "auto", tile: int = 512, overlap: int = 64) -> dict:
    """Enhance one image file; the output has the input's size (16-bit PNG, or DICOM for a DICOM input).

    The chain runs at the models' canonical height (their training scale) and the result is
    resampled back to the input's size.
    """
    from .io import read_image
    from .roi import to_canonical

    in_path, out_path = Path(in_path), Path(out_path)
    chain = Chain(model_dirs, device=device)
    record = read_image(in_path)
    image = record.pixels
    height = chain.canonical_height or image.shape[0]
    canonical, _ = to_canonical(image, height)
    enhanced = chain.run(canonical, iterations=iterations, tile=tile, overlap=overlap)
    if enhanced.shape != image.shape:
        from skimage.transform import resize

        enhanced = resize(enhanced, image.shape, order=1, mode="edge", anti_aliasing=False, preserve_range=True)
    description = {"software": "xvertnet", **chain.describe(), "iterations_applied": iterations or len(chain.models)}
    if out_path.suffix.lower() in (".dcm", ".dicom"):
        if record.format != "dicom":
            raise XvertnetError(f"{out_path}: a DICOM output needs a DICOM input, got {record.format}")
        write_derived_dicom(in_path, enhanced, out_path, description)
    else:
        write_png16(out_path, enhanced)
    return description


def write_derived_dicom(source_path, image: np.ndarray, out_path, description: dict) -> None:
    """A derived DICOM: the source's patient and study, a new series and instance, the pixels as 16-bit MONOCHROME2.

    ImageType DERIVED/SECONDARY, a Source Image Sequence pointing at the original, and the
    software version, model hashes and parameters in Derivation Description.
    """
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from . import __version__

    ds = pydicom.dcmread(source_path)
    source_sop_class, source_sop_instance = ds.SOPClassUID, ds.SOPInstanceUID
    for keyword in ("WindowCenter", "WindowWidth", "VOILUTSequence", "ModalityLUTSequence", "RescaleSlope", "RescaleIntercept",
                    "RescaleType", "VOILUTFunction", "WindowCenterWidthExplanation", "PresentationLUTShape", "LossyImageCompression",
                    "LossyImageCompressionRatio", "LossyImageCompressionMethod", "NumberOfFrames"):
        if keyword in ds:
            delattr(ds, keyword)
    pixels = np.rint(np.clip(image, 0.0, 1.0) * 65535).astype(np.uint16)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesNumber = int(ds.get("SeriesNumber", 0) or 0) + 1000
    ds.SeriesDescription = "XVertNet vertebra enhancement"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SoftwareVersions = f"xvertnet {__version__}"
    ds.DerivationDescription = json.dumps(description, sort_keys=True)[:1024]
    source = Dataset()
    source.ReferencedSOPClassUID = source_sop_class
    source.ReferencedSOPInstanceUID = source_sop_instance
    ds.SourceImageSequence = [source]
    with atomic_path(out_path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def write_enhanced_index(enhanced_shards, out_path) -> int:
    """One CSV row per enhanced image: shard, split and its PNG files (next to each shard, in the folder of its name)."""
    import h5py
    import pandas as pd

    from .shard_store import ITEMS, decode_attr

    rows = []
    for shard in enhanced_shards:
        shard = Path(shard)
        with h5py.File(shard, "r") as handle:
            for image_id, group in handle.get(ITEMS, {}).items():
                row = {"image_id": image_id, "shard": str(shard), "split": decode_attr(group.attrs.get("split", ""))}
                row.update({f"{name}_png": str(shard.with_suffix("") / f"{image_id}_{name}.png") for name in group.keys()})
                rows.append(row)
    with atomic_path(out_path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return len(rows)
