"""What LED never had: paired ground truth and hallucination checks (rule ``led_report``).

* **Restoration** (:func:`restoration_rows`): on every degraded DRR of the report splits, PSNR and SSIM of each
  method's output against the *clean DRR of the same view* (the comparison's consistency rows compare a
  method's two outputs instead), on both evaluation ROIs; and, for the clean DRRs and real radiographs, the
  same against the input itself ("standard in": how much a method changes an image that needs no restoring).
* **Hallucination** (:func:`hallucination_rows`): on every whole canonical image, whether structures stay
  where they were. Two masks of each image, each with its own thresholds (so that a change of grey levels
  alone does not count): the dense-structure ("bone") mask, pixels above the Otsu threshold of the image
  smoothed with sigma 2 px inside the body; and the body, the largest connected region above the lowest of
  three multi-Otsu classes with its holes filled. Dice of each mask before and after; 1 means nothing moved.
  LED's learned degradation G is checked the same way (``led (G)``), since the seed reports that its
  CycleGAN hallucinated body shapes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from xvertnet.demo.vertebra_labels import dice
from xvertnet.io.atomic import atomic_path
from xvertnet.io.shard_store import EVAL_ROIS, iter_items
from xvertnet.methods.led.method import LOW_CONDITIONS
from xvertnet.metrics import psnr, ssim, to_255
from xvertnet.reporting.docs_tables import write_run_table

DEGRADATION = "led (G)"


def body_mask(image: np.ndarray) -> np.ndarray:
    """The body: the largest connected region above the lowest multi-Otsu class (3 classes), holes filled."""
    from skimage.filters import threshold_multiotsu

    smooth = ndimage.gaussian_filter(np.asarray(image, np.float64), 2.0)
    try:
        low = threshold_multiotsu(smooth, classes=3)[0]
    except ValueError:  # too few grey levels for three classes
        return np.ones(image.shape, bool)
    labels, count = ndimage.label(smooth > low)
    if count == 0:
        return np.zeros(image.shape, bool)
    largest = 1 + int(np.argmax(ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))))
    return ndimage.binary_fill_holes(labels == largest)


def bone_mask(image: np.ndarray, body: np.ndarray | None = None) -> np.ndarray:
    """Dense structures: above the Otsu threshold of the image smoothed with sigma 2 px, inside the body."""
    from skimage.filters import threshold_otsu

    smooth = ndimage.gaussian_filter(np.asarray(image, np.float64), 2.0)
    body = body_mask(image) if body is None else body
    inside = smooth[body]
    if inside.size == 0 or inside.max() <= inside.min():
        return np.zeros(image.shape, bool)
    return (smooth > threshold_otsu(inside)) & body


def structure_agreement(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """Dice of the bone and body masks of an image before and after a method."""
    body_before, body_after = body_mask(before), body_mask(after)
    return {
        "bone_dice": dice(bone_mask(before, body_before), bone_mask(after, body_after)),
        "body_dice": dice(body_before, body_after),
    }


def load_outputs(shards) -> dict[str, dict[str, np.ndarray]]:
    """image id -> {roi or 'whole': array} of enhanced shards."""
    found = {}
    for shard in shards:
        for image_id, arrays, _ in iter_items(shard, names=None):
            found[image_id] = arrays
    return found


def restoration_rows(
    outputs: dict[str, dict], originals: dict[str, dict], manifest: pd.DataFrame, splits
) -> list[dict]:
    """Rows (method, image, roi, condition, psnr, ssim) against the clean DRR of the view (or, for clean and real
    images, against the input itself, condition reported as ``standard in``/``real in``)."""
    rows = []
    table = manifest.set_index("image_id")
    if not {"view", "condition", "patient"} <= set(table.columns):
        return rows
    clean_of = {(row.patient, row.view): image_id for image_id, row in table.iterrows() if row.condition == "standard"}
    for method, images in outputs.items():
        for image_id, arrays in images.items():
            if image_id not in table.index or table.loc[image_id, "split"] not in splits:
                continue
            row = table.loc[image_id]
            if row.condition in ("standard", "real"):
                reference_id, condition = image_id, f"{row.condition} in"
            else:
                reference_id, condition = clean_of.get((row.patient, row.view)), row.condition
            if reference_id not in originals:
                continue
            for roi in EVAL_ROIS:
                if roi not in arrays:
                    continue
                out, reference = to_255(arrays[roi]), to_255(originals[reference_id][roi])
                rows.append(
                    {
                        "method": method,
                        "image_id": image_id,
                        "patient": row.patient,
                        "roi": roi.split("_")[1],
                        "condition": condition,
                        "psnr": psnr(out, reference),
                        "ssim": ssim(out, reference),
                    }
                )
    return rows


def hallucination_rows(
    outputs: dict[str, dict], originals: dict[str, dict], manifest: pd.DataFrame, splits
) -> list[dict]:
    """Rows (method, image, bone_dice, body_dice) on the whole canonical images of ``splits``."""
    table = manifest.set_index("image_id")
    rows = []
    for method, images in outputs.items():
        for image_id, arrays in images.items():
            if (
                "whole" not in arrays
                or image_id not in originals
                or (image_id in table.index and table.loc[image_id, "split"] not in splits)
            ):
                continue
            info = table.loc[image_id] if image_id in table.index else {}
            rows.append(
                {
                    "method": method,
                    "image_id": image_id,
                    "condition": info.get("condition", ""),
                    **structure_agreement(originals[image_id]["whole"], arrays["whole"]),
                }
            )
    return rows


def summary_markdown(restoration: pd.DataFrame, hallucination: pd.DataFrame, methods: list[str]) -> str:
    """Two tables: restoration PSNR/SSIM per condition, and the structure agreement per method."""
    lines = ["### Restoration against the clean DRR of the same view (held-out patients)", ""]
    if restoration.empty:
        lines.append("No degraded DRRs with a clean partner in the report splits.")
    else:
        conditions = sorted(restoration["condition"].unique(), key=lambda c: (c.endswith(" in"), c))
        # the mean over the degradations LED is trained to restore (8-bit quantisation is neither quality set)
        header = [
            "method",
            *[f"{c} PSNR / SSIM" for c in conditions],
            f"mean of {', '.join(LOW_CONDITIONS)} PSNR / SSIM",
        ]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method in methods:
            part = restoration[restoration["method"] == method]
            if part.empty:
                continue
            cells = [method]
            for condition in conditions:
                values = part[part["condition"] == condition]
                cells.append(
                    f"{values['psnr'].mean():.2f} / {values['ssim'].mean():.4f} (n={len(values)})"
                    if len(values)
                    else "–"
                )
            degraded = part[part["condition"].isin(LOW_CONDITIONS)]
            cells.append(f"{degraded['psnr'].mean():.2f} / {degraded['ssim'].mean():.4f}" if len(degraded) else "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "PSNR (dB) and SSIM on the 0-255 mapping of the evaluation ROIs (MATLAB-matched measures); "
            "'original' is the degraded input itself. 'standard in' / 'real in': the output on an image that needs "
            "no restoring, against that image (higher = changed less).",
        ]
    lines += ["", "### Do structures stay where they were? (whole canonical images)", ""]
    if hallucination.empty:
        lines.append("No whole images.")
    else:
        lines += ["| method | bone-mask Dice mean | min | body Dice mean | min | images |", "|---|---|---|---|---|---|"]
        for method in [*methods, DEGRADATION]:
            part = hallucination[hallucination["method"] == method]
            if len(part):
                lines.append(
                    f"| {method} | {part['bone_dice'].mean():.3f} | {part['bone_dice'].min():.3f} | "
                    f"{part['body_dice'].mean():.3f} | {part['body_dice'].min():.3f} | {len(part)} |"
                )
        lines += [
            "",
            "Dice of the dense-structure (bone) mask and of the body mask, each image thresholded on its own, "
            "before vs after; 1 = nothing moved. `led (G)` is LED's learned degradation applied to the image.",
        ]
    return "\n".join(lines) + "\n"


def worst_cases_figure(hallucination: pd.DataFrame, data: dict, path, *, method: str = "led", count: int = 4) -> None:
    """For the ``count`` images where ``method`` moved the bone mask most: the original, the output, and the two
    bone masks (magenta = only before, green = only after, white = both). ``data``: dataset -> (outputs, originals)."""
    from xvertnet.io.figures import pyplot, save_figure

    plt = pyplot()
    worst = (
        hallucination[hallucination["method"] == method].nsmallest(count, "bone_dice")
        if len(hallucination)
        else hallucination
    )
    rows = max(len(worst), 1)
    figure, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for row, (_, item) in enumerate(worst.iterrows()):
        outputs, originals = data[item.dataset]
        before, after = originals[item.image_id]["whole"], outputs[method][item.image_id]["whole"]
        mask_before, mask_after = bone_mask(before), bone_mask(after)
        overlay = np.zeros((*before.shape, 3))
        overlay[..., 0] = mask_before  # magenta: only before
        overlay[..., 2] = mask_before
        overlay[..., 1] = mask_after  # green: only after; both: white
        for ax, image, title in (
            (axes[row, 0], before, f"{item.image_id}: original"),
            (axes[row, 1], after, method),
            (axes[row, 2], overlay, f"bone masks, Dice {item.bone_dice:.3f} (body {item.body_dice:.3f})"),
        ):
            ax.imshow(image, cmap=None if image.ndim == 3 else "gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    if worst.empty:
        axes[0, 0].text(0.5, 0.5, f"no whole images of {method}", ha="center")
        for ax in axes[0]:
            ax.axis("off")
    figure.tight_layout(rect=(0, 0, 1, 0.97))  # room for the title
    save_figure(figure, path, dpi=110, title=f"{method}: the images where the bone mask moved most")


RESTORATION_COLUMNS = ["dataset", "method", "image_id", "patient", "roi", "condition", "psnr", "ssim"]
HALLUCINATION_COLUMNS = ["dataset", "method", "image_id", "condition", "bone_dice", "body_dice"]


def write_led_report(data: dict, manifests: dict[str, pd.DataFrame], out_dir, *, splits=("test",)) -> dict:
    """``restoration.csv``, ``hallucination.csv``, ``led.md`` and ``worst_cases.png`` in ``out_dir``.
    ``data``: dataset -> (outputs {method: {image id: arrays}}, originals {image id: arrays})."""
    from pathlib import Path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    restoration, hallucination, methods = [], [], []
    for dataset, (outputs, originals) in data.items():
        methods += [m for m in outputs if m != DEGRADATION and m not in methods]
        restored = {m: outputs[m] for m in outputs if m != DEGRADATION}
        restoration += [
            {"dataset": dataset, **row} for row in restoration_rows(restored, originals, manifests[dataset], splits)
        ]
        hallucination += [
            {"dataset": dataset, **row} for row in hallucination_rows(outputs, originals, manifests[dataset], splits)
        ]
    restoration = pd.DataFrame(restoration, columns=RESTORATION_COLUMNS)
    hallucination = pd.DataFrame(hallucination, columns=HALLUCINATION_COLUMNS)
    for frame, name in ((restoration, "restoration.csv"), (hallucination, "hallucination.csv")):
        with atomic_path(out_dir / name) as tmp:
            frame.to_csv(tmp, index=False)
    write_run_table(out_dir / "led.md", "xvertnet led-report", summary_markdown(restoration, hallucination, methods))
    worst_cases_figure(hallucination, data, out_dir / "worst_cases.png")
    return {"restoration_rows": len(restoration), "hallucination_rows": len(hallucination)}
