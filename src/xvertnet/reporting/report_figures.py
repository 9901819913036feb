"""Figures for the report: box plots per measure and method, and a visual panel like the paper's Fig. 4."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xvertnet.evaluation.stats import LABELS, MEASURE_ORDER, ordered_methods
from xvertnet.io.datasets import is_real_radiograph
from xvertnet.io.figures import pyplot, save_figure
from xvertnet.io.shard_store import ITEMS, decode_attr, read_shard

#: Measures that are ratios to the original ROI: a reference line at 1.
RATIO_MEASURES = ("cnr_ratio", "edge_ratio")


def box_plots(per_roi: pd.DataFrame, out_path, *, splits=("test",)) -> None:
    """One panel per measure, one box per method, over the test ROIs of every data set.

    Every ROI is drawn as a point (ROIs the comparison table drops as z-score outliers, |z| > 1.96
    within the method, as a red x; the boxes include them); the title says which direction is
    better, a ratio to the original has a line at 1, and every box is labelled with its n."""
    from xvertnet.evaluation.stats import inliers
    from xvertnet.metrics import BETTER

    plt = pyplot()
    table = per_roi[per_roi["split"].isin(splits)]
    measures = [m for m in MEASURE_ORDER if m in table.columns and table[m].notna().any()]
    methods = ordered_methods(table["method"])
    columns = 4
    rows = max(1, int(np.ceil(len(measures) / columns)))
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.6 * columns, 3.6 * rows), constrained_layout=True, squeeze=False
    )
    rng = np.random.default_rng(0)
    for axis, measure in zip(axes.ravel(), measures):
        shown = [m for m in methods if table.loc[table["method"] == m, measure].notna().any()]
        data = [table.loc[table["method"] == m, measure].dropna() for m in shown]
        axis.boxplot([values.to_numpy() for values in data], showfliers=False, widths=0.6)
        for position, values in enumerate(data, start=1):
            keep = inliers(values).to_numpy()
            x = position + rng.uniform(-0.18, 0.18, len(values))
            axis.plot(x[keep], values.to_numpy()[keep], "o", markersize=2.5, alpha=0.6, color="tab:blue")
            if (~keep).any():
                axis.plot(x[~keep], values.to_numpy()[~keep], "x", markersize=4, color="tab:red")
        axis.set_xticks(
            range(1, len(shown) + 1),
            [f"{m}\nn={len(v)}" for m, v in zip(shown, data)],
            fontsize=7,
            rotation=30,
            ha="right",
        )
        if measure in RATIO_MEASURES:
            axis.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
        direction = "higher is better" if BETTER.get(measure, 1) > 0 else "lower is better"
        unit = " (ratio to the original; line = 1)" if measure in RATIO_MEASURES else ""
        axis.set_title(
            f"{LABELS.get(measure, measure)}{unit}\n{'↑' if BETTER.get(measure, 1) > 0 else '↓'} {direction}",
            fontsize=9,
        )
    for axis in axes.ravel()[len(measures) :]:
        axis.axis("off")
    figure.suptitle(
        "Test-split evaluation ROIs: every ROI a point; red x = dropped from the table's mean as a z-score "
        "outlier (|z| > 1.96 within the method); boxes over all points",
        fontsize=9,
    )
    save_figure(figure, out_path, dpi=90)


def _wrapped(name: str, width: int = 14) -> str:
    """A method name broken at hyphens into lines of at most ``width`` characters (column titles never clip)."""
    lines, current = [], ""
    for part in name.split("-"):
        piece = part if not current else f"{current}-{part}"
        if len(piece) > width and current:
            lines.append(current + "-")
            current = part
        else:
            current = piece
    return "\n".join([*lines, current])


def panel_image_ids(
    per_roi: pd.DataFrame, manifests: dict[str, pd.DataFrame] | None, *, splits=("test",), count: int = 4
) -> list[str]:
    """The panel's images: every real radiograph of ``splits`` first (at most two), then a clean and a low-dose DRR
    of one patient, then others up to ``count``; without manifests, the first ``count`` images."""
    ids = per_roi[per_roi["split"].isin(splits)]["image_id"].drop_duplicates().tolist()
    if not manifests:
        return ids[:count]
    info = pd.concat([m for m in manifests.values()], ignore_index=True)
    info = info[info["image_id"].isin(ids)].drop_duplicates("image_id").set_index("image_id")
    condition = info["condition"] if "condition" in info.columns else pd.Series("", index=info.index)
    real = [
        i for i in ids if i in info.index and is_real_radiograph(condition.get(i, ""), info.loc[i].get("source", "drr"))
    ]
    chosen = real[:2]
    if "patient" in info.columns:
        for _, part in info[condition.isin(["standard", "low_dose"])].groupby("patient", sort=True):
            pair = [
                part.index[part["condition"] == c][0]
                for c in ("standard", "low_dose")
                if (part["condition"] == c).any()
            ]
            if len(pair) == 2:
                chosen += pair
                break
    chosen += [i for i in ids if i not in chosen]
    return chosen[:count]


def visual_panel(
    enhanced: dict[str, list],
    out_path,
    *,
    image_ids: list[str],
    rois=("eval_upper", "eval_lower"),
    values: pd.DataFrame | None = None,
) -> None:
    """Rows: the ROIs of ``image_ids``; columns: a thumbnail locating the ROI on the original image, then the
    original and every method, all on one grey scale ([0, 1], the ROIs' common range). With ``values`` (per-ROI
    rows), each tile is labelled with its vertebral CNR and edge ratios to the original where they exist."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    methods = ordered_methods(enhanced)
    images, wholes, boxes = {}, {}, {}
    for method in methods:
        for shard in enhanced[method]:
            with read_shard(shard) as handle:
                for image_id in image_ids:
                    if image_id not in handle.get(ITEMS, {}):
                        continue
                    group = handle[ITEMS][image_id]
                    for roi in rois:
                        if roi in group:
                            images[(method, image_id, roi)] = group[roi][()]
                    if method == methods[0] and "whole" in group:
                        wholes[image_id] = group["whole"][()]
                        boxes[image_id] = decode_attr(group.attrs.get("boxes", "{}")) or {}
    shown = [(i, r) for i in image_ids for r in rois if any((m, i, r) in images for m in methods)]
    lookup = {}
    if values is not None and not values.empty:
        for row in values.itertuples(index=False):
            lookup[(row.method, row.image_id, row.roi)] = row
    columns = len(methods) + 1
    figure, axes = plt.subplots(
        max(1, len(shown)),
        columns,
        figsize=(1.7 * columns, 2.9 * max(1, len(shown))),
        constrained_layout=True,
        squeeze=False,
    )
    for row_index, (image_id, roi) in enumerate(shown):
        thumb = axes[row_index, 0]
        if image_id in wholes:
            thumb.imshow(wholes[image_id], cmap="gray", vmin=0, vmax=1)
            if roi in boxes.get(image_id, {}):
                top, left, height, width = boxes[image_id][roi]
                thumb.add_patch(Rectangle((left, top), width, height, fill=False, edgecolor="red", linewidth=1.2))
        thumb.set_xticks([])
        thumb.set_yticks([])
        thumb.set_ylabel(f"{image_id}\n{roi.replace('eval_', '')} ROI", fontsize=7)
        if row_index == 0:
            thumb.set_title("where\n(red box)", fontsize=8)
        for column, method in enumerate(methods, start=1):
            axis = axes[row_index, column]
            if (method, image_id, roi) in images:
                axis.imshow(images[(method, image_id, roi)], cmap="gray", vmin=0, vmax=1)
                row = lookup.get((method, image_id, roi.removeprefix("eval_")))  # per-ROI rows name it upper / lower
                if row is not None:
                    cnr, edge = getattr(row, "cnr_ratio", np.nan), getattr(row, "edge_ratio", np.nan)
                    if np.isfinite(cnr) and np.isfinite(edge):
                        axis.set_xlabel(f"CNR {cnr:.2f}x\nedge {edge:.1f}x", fontsize=7)
            axis.set_xticks([])
            axis.set_yticks([])
            if row_index == 0:
                axis.set_title(_wrapped(method), fontsize=8)
    save_figure(figure, out_path, dpi=100)


def whole_image_panel(
    enhanced: dict[str, list], out_path, *, image_ids: list[str], values: pd.DataFrame | None = None
) -> None:
    """Rows: ``image_ids``; columns: the original and every method's **whole** enhanced image, each at one window,
    its own 1st-99th percentiles (as a default window/level shows it). With ``values`` (per-ROI rows), each tile
    is labelled with the displayed contrast and CNR of its lower ROI's levels (behind the heart) and the CNR
    ratio there: what the measures say beside what the eye sees."""
    from xvertnet.metrics.displayed import display

    plt = pyplot()
    methods = ordered_methods(enhanced)
    wholes = {}
    for method in methods:
        for shard in enhanced[method]:
            with read_shard(shard) as handle:
                for image_id in image_ids:
                    if image_id in handle.get(ITEMS, {}) and "whole" in handle[ITEMS][image_id]:
                        wholes[(method, image_id)] = handle[ITEMS][image_id]["whole"][()]
    shown_ids = [i for i in image_ids if any((m, i) in wholes for m in methods)]
    methods = [m for m in methods if any((m, i) in wholes for i in shown_ids)]
    lookup = {}
    if values is not None and not values.empty:
        for row in values[values["roi"].eq("lower")].itertuples(index=False):
            lookup[(row.method, row.image_id)] = row
    figure, axes = plt.subplots(
        max(1, len(shown_ids)),
        max(1, len(methods)),
        figsize=(2.2 * max(1, len(methods)), 2.6 * max(1, len(shown_ids))),
        constrained_layout=True,
        squeeze=False,
    )
    for row_index, image_id in enumerate(shown_ids):
        for column, method in enumerate(methods):
            axis = axes[row_index, column]
            if (method, image_id) in wholes:
                axis.imshow(display(wholes[(method, image_id)]), cmap="gray", vmin=0, vmax=1)
                row = lookup.get((method, image_id))
                if row is not None:
                    parts = []
                    for name, label, fmt in (
                        ("displayed_contrast", "disp. contrast", ".3f"),
                        ("displayed_cnr", "disp. CNR", ".1f"),
                        ("cnr_ratio", "CNR ratio", ".2f"),
                    ):
                        value = getattr(row, name, np.nan)
                        if isinstance(value, (int, float)) and np.isfinite(value):
                            parts.append(f"{label} {value:{fmt}}")
                    axis.set_xlabel("\n".join(parts), fontsize=6)
            axis.set_xticks([])
            axis.set_yticks([])
            if row_index == 0:
                axis.set_title(_wrapped(method), fontsize=8)
            if column == 0:
                axis.set_ylabel(image_id, fontsize=7)
    figure.suptitle(
        "Whole images, each at its own 1st-99th percentile window; labels: the lower ROI's levels (behind the heart)",
        fontsize=8,
    )
    save_figure(figure, out_path, dpi=90)


def lut_maps_figure(
    image: np.ndarray, output: np.ndarray, maps: dict[str, np.ndarray], out_path, *, title: str = ""
) -> None:
    """The LUT mapping's explanation of one image (seed `interpretable_mapping_ge.txt`, Fig. 2): input, output and the
    four maps (slope a and bias b of the regional LUT, Eq. L1; window centre wc and width ww, Eq. L2), each map
    with its colour bar; identity values (a = 1, b = 0, wc = 0.5, ww = 1) sit at the middle of a diverging scale."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 6, figsize=(18, 3.8), constrained_layout=True)
    for axis, picture, label in ((axes[0], image, "input"), (axes[1], output, "output")):
        axis.imshow(picture, cmap="gray", vmin=0, vmax=1)
        axis.set_title(label, fontsize=9)
        axis.axis("off")
    centres = {"a": 1.0, "b": 0.0, "wc": 0.5, "ww": 1.0}
    labels = {
        "a": "slope a (Eq. L1)",
        "b": "bias b (Eq. L1)",
        "wc": "window centre wc (Eq. L2)",
        "ww": "window width ww (Eq. L2)",
    }
    for axis, key in zip(axes[2:], ("a", "b", "wc", "ww")):
        values = maps[key]
        spread = max(1e-3, float(np.max(np.abs(values - centres[key]))))
        shown = axis.imshow(values, cmap="RdBu_r", vmin=centres[key] - spread, vmax=centres[key] + spread)
        figure.colorbar(shown, ax=axis, shrink=0.8, pad=0.02)
        constant = float(np.ptp(values)) < 1e-6  # wc and ww: one value per image, printed
        axis.set_title(labels[key] + (f" = {float(values.mean()):.3f}" if constant else ""), fontsize=9)
        axis.axis("off")
    save_figure(figure, out_path, dpi=80, title=title)
