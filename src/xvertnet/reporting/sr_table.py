"""The super-resolution seed's tables on our data (rule ``sr_table``, ``make sr-table``).

* **Super-resolution**: SRCNN, VDSR (depth 20 as published and 11 as in the seed) are trained on the training
  split's 256 x 256 crops (bicubic x2/x3/x4 pairs, one multi-scale model each); on the held-out images that
  have a ground truth worth restoring (standard-dose DRRs and real radiographs of the report splits, both 256 x 256
  training-ROI crops), every scale's ground truth (cropped to a multiple of the scale) is downscaled by
  bicubic interpolation and restored by bicubic upscaling, SRCNN, VDSR and ZSSR (which learns from the
  low-resolution image itself); PSNR and SSIM on the 0-255 mapping, and seconds per crop on this machine.
  Every crop, for training and testing, is first stretched to [0, 1] (its minimum and maximum), as the
  seed's 8-bit images use their whole range: the canonical crops span a few percent of it, which would
  make every PSNR here tens of dB higher than on natural images and hide the differences.
* **Dehazing**: the dehazing network of ``vdsr-dehaze`` is trained on synthetic haze of the training crops and
  applied to the same held-out ROIs under random haze (two per ROI, fixed seed), 0..max_iterations times and
  with the stop rule (:func:`xvertnet.methods.super_resolution.dehaze.iterate_with_stop_rule`); PSNR/SSIM against the clean ROI.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xvertnet.io.atomic import atomic_path
from xvertnet.metrics import psnr, ssim, to_255
from xvertnet.reporting.docs_tables import write_run_table

SR_MODELS = {"srcnn": ("srcnn", {}), "vdsr-20": ("vdsr", {"depth": 20}), "vdsr-11": ("vdsr", {"depth": 11})}
PUBLISHED_SET5 = {"srcnn": (36.66, 32.75, 30.49), "vdsr-20": (37.53, 33.66, 31.35)}


def stretch(image: np.ndarray) -> np.ndarray:
    """The image's minimum and maximum mapped to 0 and 1 (a flat image to 0)."""
    low, high = float(image.min()), float(image.max())
    return ((image - low) / (high - low) if high > low else image * 0).astype(np.float32)


def held_out_rois(prep_shards: dict[str, list], manifests: dict[str, pd.DataFrame], splits) -> list[dict]:
    """The stretched 256 x 256 training-ROI crops of standard-dose DRRs and real radiographs of ``splits`` (``group``
    'held-out DRR' or 'real'). ``prep_shards`` and ``manifests`` by data set: an image is looked up in its own
    data set's manifest, so two data sets may use the same image ids."""
    from xvertnet.io.datasets import is_real_radiograph
    from xvertnet.io.shard_store import TRAIN_ROIS, iter_items

    found = []
    for dataset, shards in prep_shards.items():
        table = manifests[dataset].drop_duplicates("image_id").set_index("image_id")
        for shard in shards:
            for image_id, arrays, attrs in iter_items(shard, names=None):
                if attrs.get("split") not in splits or image_id not in table.index:
                    continue
                condition, source = table.loc[image_id].get("condition", ""), table.loc[image_id].get("source", "")
                real = is_real_radiograph(condition, source)
                if not real and condition != "standard":
                    continue
                for roi in TRAIN_ROIS:
                    if f"{roi}/X" in arrays:
                        found.append(
                            {
                                "dataset": dataset,
                                "image_id": image_id,
                                "roi": roi.split("_")[1],
                                "group": "real" if real else "held-out DRR",
                                "image": stretch(arrays[f"{roi}/X"]),
                            }
                        )
    return found


def _score(output: np.ndarray, truth: np.ndarray) -> dict:
    return {"psnr": psnr(to_255(output), to_255(truth)), "ssim": ssim(to_255(output), to_255(truth))}


def super_resolution_rows(models: dict, rois: list[dict], zssr_settings: dict, scales=(2, 3, 4)) -> list[dict]:
    """One row per ROI, scale and method (bicubic, the trained models, ZSSR)."""
    from xvertnet.methods import get_method
    from xvertnet.methods.super_resolution.networks import apply_sr, bicubic_pair

    rows = []
    for item in rois:
        for scale in scales:
            height, width = (np.array(item["image"].shape) // scale) * scale
            truth = np.ascontiguousarray(item["image"][:height, :width], np.float32)
            tensor = torch.from_numpy(truth)[None, None]
            upscaled = bicubic_pair(tensor, scale)[0, 0].numpy()
            base = {
                "dataset": item.get("dataset", ""),
                "image_id": item["image_id"],
                "roi": item["roi"],
                "group": item["group"],
                "scale": scale,
            }
            rows.append({**base, "method": "bicubic", **_score(upscaled, truth), "seconds": 0.0})
            for name, network in models.items():
                start = time.perf_counter()
                output = apply_sr(network, upscaled, "cpu")
                rows.append({**base, "method": name, **_score(output, truth), "seconds": time.perf_counter() - start})
            low = (
                torch.nn.functional.interpolate(
                    tensor, size=(height // scale, width // scale), mode="bicubic", antialias=True, align_corners=False
                )
                .clamp(0, 1)[0, 0]
                .numpy()
            )
            zssr = get_method("zssr", {**zssr_settings, "scale": float(scale)})
            start = time.perf_counter()
            output = zssr.super_resolve(low)
            rows.append(
                {
                    **base,
                    "method": "zssr",
                    **_score(output[:height, :width], truth),
                    "seconds": time.perf_counter() - start,
                }
            )
    return rows


def dehazing_rows(dehazer, rois: list[dict], *, hazes: int = 2, seed: int = 0) -> list[dict]:
    """Per held-out ROI and random haze: PSNR/SSIM after 0..max_iterations iterations and with the stop rule."""
    from xvertnet.methods.super_resolution.dehaze import add_haze, dehaze_once, random_haze

    rng = np.random.default_rng(seed)
    rows = []
    for item in rois:
        clean = item["image"].astype(np.float32)
        for haze in range(hazes):
            t, a = random_haze(clean.shape, rng)
            hazy = add_haze(clean, t, a).astype(np.float32)
            base = {
                "dataset": item.get("dataset", ""),
                "image_id": item["image_id"],
                "roi": item["roi"],
                "group": item["group"],
                "haze": haze,
            }
            current, elapsed = hazy, 0.0
            for iteration in range(dehazer.params["max_iterations"] + 1):
                if iteration:
                    start = time.perf_counter()
                    current = dehaze_once(dehazer.network.dehaze, current, "cpu")
                    elapsed += time.perf_counter() - start
                rows.append(
                    {
                        **base,
                        "run": f"{iteration} iterations",
                        "iterations": iteration,
                        **_score(current, clean),
                        "seconds": elapsed,
                    }
                )
            start = time.perf_counter()
            stopped, count, _ = dehazer.dehaze(hazy)
            rows.append(
                {
                    **base,
                    "run": "stop rule",
                    "iterations": count,
                    **_score(stopped, clean),
                    "seconds": time.perf_counter() - start,
                }
            )
    return rows


def sr_markdown(rows: pd.DataFrame, training: dict) -> str:
    lines = [
        "| method | parameters | train s | "
        + " | ".join(f"x{s} PSNR / SSIM" for s in sorted(rows["scale"].unique()))
        + " | s / ROI | Set5 PSNR (published) |",
        "|---|---|---|" + "---|" * rows["scale"].nunique() + "---|---|",
    ]
    for method in ["bicubic", *training, "zssr"]:
        part = rows[rows["method"] == method]
        cells = [
            method,
            str(training.get(method, {}).get("parameters", "–")),
            f"{training[method]['seconds']:.0f}" if method in training else "–",
        ]
        for scale in sorted(rows["scale"].unique()):
            values = part[part["scale"] == scale]
            cells.append(f"{values['psnr'].mean():.2f} / {values['ssim'].mean():.4f}")
        cells.append(f"{part['seconds'].mean():.3f}")
        cells.append(" / ".join(f"{v:.2f}" for v in PUBLISHED_SET5[method]) if method in PUBLISHED_SET5 else "")
        lines.append("| " + " | ".join(cells) + " |")
    groups = ", ".join(
        f"{g}: {n}" for g, n in rows.drop_duplicates(["dataset", "image_id", "roi"])["group"].value_counts().items()
    )
    lines += [
        "",
        f"Means over the held-out 256 x 256 crops, each stretched to [0, 1] ({groups}); PSNR (dB) and SSIM on "
        "the 0-255 mapping; Set5 values from the papers (x2 / x3 / x4, natural images, luminance).",
    ]
    return "\n".join(lines) + "\n"


def dehazing_markdown(rows: pd.DataFrame) -> str:
    order = sorted(rows["run"].unique(), key=lambda r: (r == "stop rule", r))
    lines = ["| run | PSNR | SSIM | mean iterations | s / ROI |", "|---|---|---|---|---|"]
    for run in order:
        part = rows[rows["run"] == run]
        lines.append(
            f"| {run} | {part['psnr'].mean():.2f} | {part['ssim'].mean():.4f} | {part['iterations'].mean():.2f} | {part['seconds'].mean():.3f} |"
        )
    lines += [
        "",
        f"{rows.drop_duplicates(['dataset', 'image_id', 'roi', 'haze']).shape[0]} hazed held-out crops (stretched 256 x 256) against the clean crop; "
        "'0 iterations' is the hazed input.",
    ]
    return "\n".join(lines) + "\n"


def write_tables(train_crops: list[np.ndarray], rois: list[dict], settings: dict, out_dir) -> dict:
    """Train (on the stretched ``train_crops``), score, and write ``super_resolution.{csv,md}`` and
    ``dehazing.{csv,md}`` in ``out_dir``."""
    import tempfile

    from xvertnet.methods import get_method

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_crops = [stretch(crop) for crop in train_crops]
    models, training = {}, {}
    for name, (method_name, overrides) in SR_MODELS.items():
        method = get_method(method_name, {**settings.get(method_name, {}), **overrides})
        with tempfile.TemporaryDirectory() as folder:
            metadata = method.fit(train_crops, Path(folder))
        models[name] = method.network
        training[name] = {"parameters": metadata["parameters"], "seconds": metadata["seconds"]}
    sr = pd.DataFrame(super_resolution_rows(models, rois, settings.get("zssr", {})))
    dehazer = get_method(
        "vdsr-dehaze", {**settings.get("vdsr-dehaze", {}), "steps": 1}
    )  # only its dehazing network is used here
    from xvertnet.methods.super_resolution.dehaze import train_dehaze

    p = dehazer.params
    start = time.perf_counter()
    train_dehaze(
        dehazer.network.dehaze,
        train_crops,
        steps=p["dehaze_steps"],
        batch=p["dehaze_batch"],
        patch=p["dehaze_patch"],
        lr=p["dehaze_lr"],
        seed=p["seed"],
    )
    dehaze_seconds = time.perf_counter() - start
    dehazing = pd.DataFrame(dehazing_rows(dehazer, rois))
    for frame, name, text in (
        (sr, "super_resolution", sr_markdown(sr, training)),
        (
            dehazing,
            "dehazing",
            dehazing_markdown(dehazing) + f"\nTraining the dehazing network: {dehaze_seconds:.0f} s.\n",
        ),
    ):
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False)
        write_run_table(out_dir / f"{name}.md", "xvertnet sr-table", text)
    return {"rois": len(rois), "training": training, "dehaze_seconds": dehaze_seconds}
