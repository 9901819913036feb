"""Figures for the report: box plots per measure and method, and a visual panel like the paper's Fig. 4."""

from __future__ import annotations


import numpy as np
import pandas as pd

from .atomic import atomic_path
from .shard_store import ITEMS, read_shard
from .stats import LABELS, MEASURE_ORDER, METHOD_ORDER


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: Measures that are ratios to the original ROI: a reference line at 1.
RATIO_MEASURES = ("cnr_ratio", "edge_ratio")


def box_plots(per_roi: pd.DataFrame, out_path, *, splits=("test",)) -> None:
    """One panel per measure, one box per method, over the test ROIs of every data set.

    Every ROI is drawn as a point (ROIs the comparison table drops as z-score outliers, |z| > 1.96
    within the method, as a red x; the boxes include them); the title says which direction is
    better, a ratio to the original has a line at 1, and every box is labelled with its n."""
    from .metrics import BETTER
    from .stats import inliers

    plt = _pyplot()
    table = per_roi[per_roi["split"].isin(splits)]
    measures = [m for m in MEASURE_ORDER if m in table.columns and table[m].notna().any()]
    methods = [m for m in METHOD_ORDER if m in set(table["method"])] + sorted(set(table["method"]) - set(METHOD_ORDER))
    columns = 4
    rows = max(1, int(np.ceil(len(measures) / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.6 * rows), constrained_layout=True, squeeze=False)
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
        axis.set_xticks(range(1, len(shown) + 1), [f"{m}\nn={len(v)}" for m, v in zip(shown, data)], fontsize=7, rotation=30,
                        ha="right")
        if measure in RATIO_MEASURES:
            axis.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
        direction = "higher is better" if BETTER.get(measure, 1) > 0 else "lower is better"
        unit = " (ratio to the original; line = 1)" if measure in RATIO_MEASURES else ""
        axis.set_title(f"{LABELS.get(measure, measure)}{unit}\n{'↑' if BETTER.get(measure, 1) > 0 else '↓'} {direction}",
                       fontsize=9)
    for axis in axes.ravel()[len(measures):]:
        axis.axis("off")
    figure.suptitle("Test-split evaluation ROIs: every ROI a point; red x = dropped from the table's mean as a z-score "
                    "outlier (|z| > 1.96 within the method); boxes over all points", fontsize=9)
    with atomic_path(out_path) as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)


def visual_panel(enhanced: dict[str, list], out_path, *, image_ids: list[str], roi: str = "eval_lower") -> None:
    """Rows: ROIs of ``image_ids``; columns: the original and every method (each shown on its own [0, 1] scale)."""
    plt = _pyplot()
    methods = [m for m in METHOD_ORDER if m in enhanced] + sorted(set(enhanced) - set(METHOD_ORDER))
    images = {}
    for method in methods:
        for shard in enhanced[method]:
            with read_shard(shard) as handle:
                for image_id in image_ids:
                    if image_id in handle.get(ITEMS, {}):
                        images[(method, image_id)] = handle[ITEMS][image_id][roi][()]
    shown = [i for i in image_ids if any((m, i) in images for m in methods)]
    figure, axes = plt.subplots(max(1, len(shown)), len(methods), figsize=(1.6 * len(methods), 2.6 * max(1, len(shown))),
                                constrained_layout=True, squeeze=False)
    for row, image_id in enumerate(shown):
        for column, method in enumerate(methods):
            axis = axes[row, column]
            if (method, image_id) in images:
                axis.imshow(images[(method, image_id)], cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(method, fontsize=8)
            if column == 0:
                axis.set_ylabel(image_id, fontsize=7)
    with atomic_path(out_path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
