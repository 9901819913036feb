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


def box_plots(per_roi: pd.DataFrame, out_path, *, splits=("test",)) -> None:
    """One panel per measure, one box per method, over the test ROIs of every data set."""
    plt = _pyplot()
    table = per_roi[per_roi["split"].isin(splits)]
    measures = [m for m in MEASURE_ORDER if m in table.columns and table[m].notna().any()]
    methods = [m for m in METHOD_ORDER if m in set(table["method"])]
    columns = 4
    rows = max(1, int(np.ceil(len(measures) / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), constrained_layout=True, squeeze=False)
    for axis, measure in zip(axes.ravel(), measures):
        data = [table.loc[table["method"] == m, measure].dropna().to_numpy() for m in methods]
        axis.boxplot(data, tick_labels=methods, showfliers=True)
        axis.set_title(LABELS.get(measure, measure), fontsize=9)
        axis.tick_params(axis="x", labelrotation=60, labelsize=7)
    for axis in axes.ravel()[len(measures):]:
        axis.axis("off")
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
