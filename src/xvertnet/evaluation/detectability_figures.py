"""Figures of the fracture-detectability study: what a simulated fracture looks like, and present/absent pairs per method."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xvertnet.evaluation.fracture import example_level
from xvertnet.io.atomic import atomic_path


def fracture_figure(scene, path) -> None:
    """Per fracture type: the body's sagittal section before and after (CT attenuation), and the projected difference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted(scene.examples)
    figure, axes = plt.subplots(len(kinds), 3, figsize=(9, 3.2 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        example = scene.examples[kind]
        middle = example["before"].shape[0] // 2  # the body's middle left-right column: a sagittal section (A, S)
        for column, (name, volume) in enumerate((("before", example["before"]), ("after", example["after"]))):
            axes[row, column].imshow(volume[middle].T[::-1], cmap="gray", vmin=0.0, vmax=0.04, aspect="auto")
            axes[row, column].set_title(f"{kind}, level {example['level']}: sagittal, {name}", fontsize=8)
        difference = scene.differences[(example["level"], kind, max(g for (_, k, g) in scene.differences if k == kind))]
        centre = scene.levels[example["level"]]["centre"]
        crop = _crop(difference, centre, 96)
        limit = float(np.abs(crop).max()) or 1.0
        shown = axes[row, 2].imshow(crop, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[row, 2].set_title("projected difference (line integral)", fontsize=8)
        figure.colorbar(shown, ax=axes[row, 2], fraction=0.046)
        for axis in axes[row]:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(
        f"{scene.patient}: simulated compression fractures (posterior left in the sagittal sections, superior up)",
        fontsize=9,
    )
    figure.tight_layout()
    with atomic_path(Path(path)) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


def _crop(image: np.ndarray, centre, size: int) -> np.ndarray:
    from xvertnet.evaluation.observer import patch

    return patch(image, centre, size)


def pairs_figure(examples: dict, scene, settings, path) -> None:
    """For each method, the displayed neighbourhood of one level without and with each lesion (first realisation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    level = example_level(scene.levels)
    centre = scene.levels[level]["centre"]
    methods = list(examples)
    keys = ["absent"] + sorted(key for key in next(iter(examples.values())) if key != "absent")
    size = 2 * settings.observer.patch_px
    figure, axes = plt.subplots(len(methods), len(keys), figsize=(1.9 * len(keys), 2.0 * len(methods)), squeeze=False)
    for row, name in enumerate(methods):
        for column, key in enumerate(keys):
            axis = axes[row, column]
            if key in examples[name]:
                axis.imshow(_crop(examples[name][key], centre, size), cmap="gray", vmin=0.0, vmax=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(key, fontsize=8)
            if column == 0:
                axis.set_ylabel(name, fontsize=8)
    figure.suptitle(
        f"{scene.patient}, level {level} ({scene.levels[level]['region'].replace('_', ' ')}), centre of each "
        "panel; displayed as each method shows it",
        fontsize=8,
    )
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.3 / figure.get_figheight()))  # the title's own strip, whatever the rows
    with atomic_path(Path(path)) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


def clahe_curve_figure(table, path, *, grade: int | None = None) -> None:
    """AUC against CLAHE's clip limit (one curve per region, each observer a panel), the other methods as lines across:
    no single clip limit decides how CLAHE compares. ``grade`` None: the highest grade in the table; all types pooled
    by averaging their AUCs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grade = int(table["grade"].max()) if grade is None else grade
    part = table[(table["grade"] == grade)]
    observers = list(dict.fromkeys(part["observer"]))
    regions = [region for region in ("all", "behind_heart", "above_heart") if region in set(part["region"])]
    figure, axes = plt.subplots(1, len(observers), figsize=(5.0 * len(observers), 3.8), squeeze=False)
    colours = dict(zip(regions, ("black", "tab:red", "tab:blue")))
    for axis, observer_name in zip(axes[0], observers):
        rows = part[part["observer"] == observer_name]
        mean = rows.groupby(["method", "region"])["auc"].mean()
        clahe = sorted(
            (float(name.split("-", 1)[1]), name) for name in set(rows["method"]) if name.startswith("clahe-")
        )
        for region in regions:
            if clahe:
                axis.plot(
                    [c for c, _ in clahe],
                    [mean.get((name, region), np.nan) for _, name in clahe],
                    "o-",
                    color=colours[region],
                    label=f"CLAHE, {region.replace('_', ' ')}",
                )
            for name, style in (("original", ":"), ("xvertnet", "--")):
                if (name, region) in mean.index:
                    axis.axhline(
                        mean[(name, region)],
                        linestyle=style,
                        color=colours[region],
                        linewidth=1,
                        label=f"{name}, {region.replace('_', ' ')}",
                    )
        axis.set_xscale("log")
        axis.set_xlabel("CLAHE clip limit")
        axis.set_ylabel(f"AUC (grade {grade}, mean over fracture types)")
        axis.set_title(observer_name, fontsize=9)
        axis.legend(fontsize=6)
    figure.tight_layout()
    with atomic_path(Path(path)) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
