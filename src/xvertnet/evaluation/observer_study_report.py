"""The fracture-observer design study's page (``summary.md``) and its real-radiograph panel, from the tables that
:func:`xvertnet.evaluation.observer_study.run_observer_study` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xvertnet.evaluation.observer_selection import GUARD_REGION, TARGET_REGION
from xvertnet.io.atomic import atomic_path
from xvertnet.provenance import made_by_line


def real_radiograph_panel(enhancers: dict, path, *, shipped=None, canonical_height: int = 512) -> None:
    """The real radiograph at hand (RG1_UNCR, a PA chest CR) at the study's working height, as each method shows it
    (each image through its own 1st-99th percentile window), with the shipped model beside them when given."""
    from skimage.transform import resize

    from xvertnet.demo.demo_data import real_radiograph_path
    from xvertnet.evaluation.observer import displayed
    from xvertnet.io.figures import pyplot, save_figure
    from xvertnet.io.readers import read_image

    pixels = read_image(real_radiograph_path()).pixels
    scale = canonical_height / pixels.shape[0]
    image = resize(pixels, (canonical_height, round(pixels.shape[1] * scale)), anti_aliasing=True).astype(np.float32)
    shown = {name: displayed(np.clip(enhance(image), 0.0, 1.0)) for name, enhance in enhancers.items()}
    if shipped is not None:
        shown["shipped xvertnet"] = displayed(np.clip(shipped(image), 0.0, 1.0))
    plt = pyplot()
    rows, columns = image.shape
    centre = slice(rows // 3, rows // 3 + rows // 3), slice(columns // 2 - columns // 6, columns // 2 + columns // 6)
    figure, axes = plt.subplots(2, len(shown), figsize=(2.6 * len(shown), 5.6), squeeze=False)
    for column, (name, values) in enumerate(shown.items()):
        axes[0, column].imshow(values, cmap="gray", vmin=0.0, vmax=1.0)
        axes[1, column].imshow(values[centre], cmap="gray", vmin=0.0, vmax=1.0)
        axes[0, column].set_title(name, fontsize=8)
        for axis in axes[:, column]:
            axis.set_xticks([])
            axis.set_yticks([])
    axes[1, 0].set_ylabel("mediastinum, middle third", fontsize=8)
    save_figure(figure, Path(path), dpi=100, title="RG1_UNCR (real PA chest CR), each method through its own window")


def _mean_sd(table: pd.DataFrame, method: str, observer: str, region: str) -> tuple[float, float]:
    part = table[table["method"].eq(method) & table["observer"].eq(observer) & table["region"].eq(region)]
    return (float(part["auc"].mean()), float(part["seed_sd"].mean())) if not part.empty else (np.nan, np.nan)


def _auc_cell(value: tuple[float, float], seeds: int) -> str:
    mean, spread = value
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.3f} ± {spread:.3f}" if seeds > 1 else f"{mean:.3f}"


def variants_table(by_variant: pd.DataFrame, ranking: pd.DataFrame, observer: str) -> list[str]:
    """Per method: AUC behind and above the heart (mean over patients; ± the mean over patients of the spread over
    seeds) for both observers, and the choosing observer's score and harm on all patients."""
    other = "npwe" if observer == "cho" else "cho"
    ranked = ranking.set_index("entry")
    lines = [
        f"| method | seeds | {observer} behind heart | {observer} above heart | {other} behind heart | {other} above heart "
        "| score (all patients) | harms above the heart |",
        "|---|---|---|---|---|---|---|---|",
    ]
    methods = list(dict.fromkeys(by_variant["method"]))
    for method in ["original", *[m for m in methods if m != "original"]]:
        seeds = int(by_variant.loc[by_variant["method"].eq(method), "seeds"].max())
        cells = [
            _auc_cell(_mean_sd(by_variant, method, name, region), seeds)
            for name in (observer, other)
            for region in (TARGET_REGION, GUARD_REGION)
        ]
        score = f"{ranked.loc[method, 'score']:.3f}" if method in ranked.index else "1 (reference)"
        harmed = (str(ranked.loc[method, "harmed"]) or "no") if method in ranked.index else ""
        lines.append(f"| {method} | {seeds} | {' | '.join(cells)} | {score} | {harmed} |")
    return lines


def tests_table(tests: pd.DataFrame, clahe_best: str) -> list[str]:
    lines = [
        f"| seed | observer | lesion | region | AUC | vs original (p) | vs {clahe_best} (p) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in tests.sort_values(["seed", "observer", "region", "kind", "grade"]).to_dict("records"):
        versus = []
        for reference in ("original", clahe_best):
            key = f"vs_{reference}"
            versus.append(
                f"{row[key]:+.3f} ({row[key + '_p']:.2f})" if key in row and np.isfinite(row.get(key, np.nan)) else "-"
            )
        lines.append(
            f"| {row['seed']} | {row['observer']} | {row['kind']} g{row['grade']} | {row['region'].replace('_', ' ')} "
            f"| {row['auc']:.3f} | {versus[0]} | {versus[1]} |"
        )
    return lines


def raises_false_positives(value: float, reference: float, absent: int) -> bool:
    """More false positives than the reference by more than twice the binomial standard error of its fraction."""
    return bool(value - reference > 2.0 * np.sqrt(max(reference * (1.0 - reference), 1e-6) / max(absent, 1)))


def false_positive_lines(false_positives: pd.DataFrame, entries: dict) -> tuple[list[str], list[str]]:
    """The hallucination table (per method, mean over fracture types and seeds) and the methods that raise false
    positives behind the heart or over all levels (:func:`raises_false_positives`)."""
    table = false_positives.copy()
    table["method"] = [entries.get(name, {}).get("variant", name) for name in table["method"]]
    means = table.groupby(["method", "observer", "region"], sort=False).agg(
        fpf=("false_positive_fraction", "mean"), sensitivity=("sensitivity", "mean"), absent=("absent", "mean")
    )
    lines = [
        "| method | observer | all levels: FPF (original) | behind the heart: FPF (original) |",
        "|---|---|---|---|",
    ]
    raised = []
    for method, observer in dict.fromkeys((method, observer) for method, observer, _ in means.index):
        cells = []
        for region in ("all", TARGET_REGION):
            if (method, observer, region) not in means.index:
                cells.append("-")
                continue
            value = means.loc[(method, observer, region)]
            reference = means.loc[("original", observer, region)]
            flag = raises_false_positives(value["fpf"], reference["fpf"], int(value["absent"]))
            if flag and method != "original":
                raised.append(f"{method} ({observer}, {region.replace('_', ' ')})")
            cells.append(f"{value['fpf']:.3f} ({reference['fpf']:.3f}){' raised' if flag else ''}")
        lines.append(f"| {method} | {observer} | {cells[0]} | {cells[1]} |")
    return lines, raised


def goal_lines(summary: dict, tests: pd.DataFrame, folds: pd.DataFrame, raised: list[str]) -> list[str]:
    """Where the study stands against its goal, in words from the numbers."""
    tested, clahe_best = summary["tested"], summary["clahe_best"]
    behind = tests[tests["region"].eq(TARGET_REGION)]
    above = tests[tests["region"].eq(GUARD_REGION)]

    def count(part, reference, better):
        key = f"vs_{reference}"
        if key not in part:
            return 0, len(part)
        hit = (part[key] > 0) & (part[f"{key}_p"] < 0.05) if better else (part[key] < 0) & (part[f"{key}_p"] < 0.05)
        return int(hit.sum()), len(part)

    wins_original, n = count(behind, "original", True)
    wins_clahe, _ = count(behind, clahe_best, True)
    losses_above, n_above = count(above, "original", False)
    recommended = summary["recommended"]
    lines = [
        "## Where the goal stands",
        "",
        (
            f"* Recommended on all patients: **{recommended}**."
            if recommended
            else "* **Nothing is recommended**: no candidate beats the original behind the heart on every patient "
            "without harming above it."
        ),
        f"* Tested: {tested} (each seed; {'the recommendation' if tested == recommended else 'the best score, not chosen'}"
        f"), against the original and CLAHE at {clahe_best} (CLAHE's best clip limit on all patients).",
        f"* Behind the heart, significantly better than the original (p < 0.05): {wins_original} of {n} "
        f"(seed x observer x lesion); than {clahe_best}: {wins_clahe} of {n}.",
        f"* Above the heart, significantly worse than the original: {losses_above} of {n_above}.",
        "* False positives raised (more than two binomial standard errors above the original's at its sensitivity): "
        + (", ".join(raised) if raised else "none")
        + ".",
    ]
    if not folds.empty:
        lines.append(
            f"* Nested choice: mean change of the observer's AUC behind the heart on the held-out patients "
            f"{folds['difference_held_out'].mean():+.3f} (chosen: {', '.join(folds['chosen'])})."
        )
    lines.append("")
    return lines


def write_markdown(out_dir: Path, summary: dict, settings) -> None:
    """``summary.md``: the design, the variants' table with seed spreads, the nested folds, the tests, the
    hallucination check, where the goal stands and the run time."""
    from xvertnet.evaluation.observer_selection import nested_markdown

    out_dir = Path(out_dir)
    read = {name: pd.read_csv(out_dir / f"{name}.csv", keep_default_na=False) for name in ("variant_aucs", "ranking")}
    # a fold that refused nothing has an empty `refused`: kept as text, not read as a missing number
    folds = pd.read_csv(out_dir / "folds.csv", dtype={"refused": str}).fillna({"refused": ""})
    clahe_folds = pd.read_csv(out_dir / "clahe_folds.csv", dtype={"refused": str}).fillna({"refused": ""})
    tests = pd.read_csv(out_dir / "tests.csv")
    false_positives = pd.read_csv(out_dir / "false_positives.csv")
    entries = summary["entries"]
    variants = list(dict.fromkeys(spec["variant"] for spec in entries.values()))
    seeds = sorted({spec["seed"] for spec in entries.values()})
    fp_lines, raised = false_positive_lines(false_positives, entries)
    timing = summary["timing_s"]
    lines = [
        made_by_line("make study", summary.get("produced_by", {})),
        "",
        f"Held-out patients {', '.join(settings.patients)}; views {', '.join(settings.views)}; "
        f"{settings.realisations} noise realisations per view; {summary['images_per_method']} whole images per method; "
        f"{summary['cases']['present']} signal-present and {summary['cases']['absent']} signal-absent patches. "
        f"Variants {', '.join(variants)}, each trained with seeds {', '.join(map(str, seeds))}; CLAHE at clip limits "
        f"{', '.join(f'{c:g}' for c in settings.clip_limits)}. The choosing observer: {settings.observer}; do-no-harm "
        f"tolerance {settings.harm_tolerance:g} (relative, on the AUC above the heart).",
        "",
        "## Every candidate (AUC per patient, mean over patients; ± the spread over training seeds)",
        "",
        *variants_table(read["variant_aucs"], read["ranking"], settings.observer),
        "",
        *nested_markdown(
            folds,
            [*variants, *settings.clahe_names()],
            settings.observer,
            title="Every candidate, chosen on other patients",
        ),
        *nested_markdown(
            clahe_folds,
            settings.clahe_names(),
            settings.observer,
            title="CLAHE alone: a clip limit chosen on other patients",
        ),
        f"## {summary['tested']} against the original and CLAHE at {summary['clahe_best']}, per seed",
        "",
        "AUC per lesion; paired differences with p from a bootstrap over patients and, within them, cases.",
        "",
        *tests_table(tests, summary["clahe_best"]),
        "",
        f"## Hallucination check (false-positive fraction at the original's sensitivity at "
        f"{settings.false_positive_fraction:g} false positives)",
        "",
        *fp_lines,
        "",
        *goal_lines(summary, tests, folds, raised),
        "Panels beside this page: `fracture.png` (a held-out level without and with each lesion, as the original, "
        "CLAHE's best clip limit and the tested variant's first seed show it) and `real.png` (the real radiograph, "
        "with the shipped model beside them).",
        "",
        f"Run time: projection {timing['projection']:.0f} s, images and methods {timing['images_and_methods']:.0f} s, "
        f"total {timing['total']:.0f} s.",
        "",
    ]
    with atomic_path(out_dir / "summary.md") as tmp:
        Path(tmp).write_text("\n".join(lines))
