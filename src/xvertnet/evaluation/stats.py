"""Statistics and the comparison table (journal paper, Sec. 4.4 and Table 1).

Per data set and measure: outliers are values outside mean +- 1.96 std (z-score); for each
pairwise comparison of XVertNet with another method the union of both methods' outliers is
removed, and a Wilcoxon signed-rank test (scipy) on the remaining paired ROIs gives the
p-value. Means and standard deviations in the table are over each method's own ROIs without
its outliers.
"""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from xvertnet.io.atomic import atomic_path
from xvertnet.metrics import BETTER, MetricParams
from xvertnet.settings import FromConfig

Z_THRESHOLD = 1.96
ALPHA = 0.05
METHOD_ORDER = ("original", "xvertnet", "xvertnet-paper", "clahe", "farbman", "zerodce", "zssr", "madmad")


def ordered_methods(names) -> list[str]:
    """``names`` in the tables' order: :data:`METHOD_ORDER` first, then the others alphabetically."""
    names = set(names)
    return [m for m in METHOD_ORDER if m in names] + sorted(names - set(METHOD_ORDER))


MEASURE_ORDER = (
    "seg_dice",
    "seg_hd95",
    "displayed_contrast",
    "displayed_cnr",
    "displayed_saturation",
    "cnr_ratio",
    "edge_ratio",
    "consistency_psnr",
    "consistency_ssim",
    "entropy",
    "tc",
    "lpc_si",
    "tmqi",
    "piqe",
    "brisque",
    "niqe",
)
LABELS = {
    "seg_dice": "segmentation Dice",
    "seg_hd95": "segmentation HD95 (px)",
    "displayed_contrast": "displayed vertebral contrast",
    "displayed_cnr": "displayed vertebral CNR",
    "displayed_saturation": "displayed saturation",
    "cnr_ratio": "vertebral CNR / original",
    "edge_ratio": "vertebral edge / original",
    "consistency_psnr": "PSNR degraded vs standard",
    "consistency_ssim": "SSIM degraded vs standard",
    "entropy": "Entropy",
    "tc": "TC",
    "lpc_si": "LPC-SI",
    "tmqi": "TMQI",
    "piqe": "PIQE",
    "brisque": "BRISQUE",
    "niqe": "NIQE",
}


@dataclasses.dataclass(frozen=True)
class TableSettings(FromConfig):
    """What the comparison table and its figures show (config section ``metrics``)."""

    SECTION: ClassVar[str] = "metrics"
    ELSEWHERE: ClassVar[tuple[str, ...]] = tuple(MetricParams.config_keys())  # the measures' own keys

    table_splits: tuple[str, ...] = ("test",)
    panel_images: int = 4
    gallery_images: int = 48
    #: ``make detectability``'s detectability.csv, joined into the comparison table and report ("" for none).
    detectability_table: str = ""


def inliers(values: pd.Series, *, z: float = Z_THRESHOLD) -> pd.Series:
    """True where a value lies within mean +- z std (sample std); NaN values are never inliers."""
    finite = values.dropna()
    keep = pd.Series(False, index=values.index)
    if len(finite) < 3 or finite.std(ddof=1) == 0:
        keep[finite.index] = True
        return keep
    keep[finite.index] = (finite - finite.mean()).abs() <= z * finite.std(ddof=1)
    return keep


def wilcoxon_p(a: pd.Series, b: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired samples (NaN when undefined)."""
    differences = (a - b).to_numpy()
    if len(differences) < 2 or np.allclose(differences, 0):
        return float("nan")
    return float(scipy_stats.wilcoxon(a.to_numpy(), b.to_numpy()).pvalue)


def recorded_param(rows: pd.DataFrame, key: str) -> str:
    """Distinct values of measure parameter ``key`` in the rows' ``params`` JSON (the per-ROI record).

    "0.75" for one value, "0.33;0.75" when the rows mix values, "" when nothing is recorded.
    """
    if "params" not in rows.columns:
        return ""
    values = set()
    for text in rows["params"].dropna().unique():
        value = json.loads(text).get(key) if isinstance(text, str) and text.strip() else None
        if value is not None:
            values.add(float(value))
    return ";".join(f"{value:g}" for value in sorted(values))


def sigma_onf_note(recorded) -> str:
    """The sentence naming LPC-SI's sigma_onf, from ``recorded_param`` texts (e.g. a table's column)."""
    values = sorted({v for text in recorded if isinstance(text, str) for v in text.split(";") if v}, key=float)
    if not values:
        return "LPC-SI: σ_onf not recorded."
    if len(values) > 1:
        return f"LPC-SI: rows computed with different σ_onf ({', '.join(values)}), not comparable."
    return (
        f"LPC-SI computed with log-Gabor σ_onf = {values[0]} (0.75: the authors' released lpc_si.m; "
        "0.33: other copies; config metrics.lpc_sigma_onf)."
    )


def compare(per_roi: pd.DataFrame, *, reference: str = "xvertnet", splits=("test",)) -> pd.DataFrame:
    """Long statistics: dataset, measure, method, n, mean, std, p-value against ``reference``.

    LPC-SI rows also name the ``lpc_sigma_onf`` their ROIs were measured with (``recorded_param``).
    """
    table = per_roi[per_roi["split"].isin(splits)] if "split" in per_roi.columns else per_roi
    rows = []
    keys = ["image_id", "roi"]
    for dataset, part in table.groupby("dataset"):
        for measure in [m for m in MEASURE_ORDER if m in part.columns]:
            wide = part.pivot_table(index=keys, columns="method", values=measure, aggfunc="first")
            wide = wide.dropna(axis=1, how="all")
            if wide.empty:
                continue
            keep = {method: inliers(wide[method]) for method in wide.columns}
            for method in wide.columns:
                values = wide[method][keep[method]]
                p_value = float("nan")
                if reference in wide.columns and method != reference:
                    both = keep[method] & keep[reference]
                    p_value = wilcoxon_p(wide.loc[both, reference], wide.loc[both, method])
                sigma_onf = ""
                if measure == "lpc_si":
                    sigma_onf = recorded_param(
                        part[(part["method"] == method) & part[measure].notna()], "lpc_sigma_onf"
                    )
                rows.append(
                    {
                        "dataset": dataset,
                        "measure": measure,
                        "method": method,
                        "n": int(values.size),
                        "mean": float(values.mean()) if values.size else float("nan"),
                        "std": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
                        "p_value": p_value,
                        "significant": bool(p_value < ALPHA) if not np.isnan(p_value) else False,
                        "lpc_sigma_onf": sigma_onf,
                    }
                )
    return pd.DataFrame(rows)


def _ranks(part: pd.DataFrame) -> dict[str, int]:
    """1 for the best mean, 2 for the second, in the measure's better direction."""
    direction = BETTER.get(part["measure"].iloc[0], 1)
    order = part.dropna(subset=["mean"]).sort_values("mean", ascending=direction < 0)["method"].tolist()
    return {method: rank for rank, method in enumerate(order[:2], start=1)}


def _cell(row, rank: int, style: str) -> str:
    text = f"{row['mean']:.4g} ± {row['std']:.2g}" if not np.isnan(row["std"]) else f"{row['mean']:.4g}"
    if row["significant"]:
        text += "*"
    if style == "md":
        return f"**{text}**" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text
    text = text.replace("±", r"$\pm$")
    return rf"\textbf{{{text}}}" if rank == 1 else rf"\underline{{{text}}}" if rank == 2 else text


def reference_method(methods) -> str:
    """The method the others are tested against: ``xvertnet`` (the recommended configuration), else the first XVertNet row."""
    methods = list(methods)
    if "xvertnet" in methods:
        return "xvertnet"
    return next((m for m in methods if m.startswith("xvertnet")), "xvertnet")


def undefined_measures(per_roi: pd.DataFrame, splits) -> list[str]:
    """Measures of the per-ROI table that no ROI of ``splits`` has a value for (NIQE on ROIs under 96 x 96)."""
    rows = per_roi[per_roi["split"].isin(splits)]
    return [m for m in MEASURE_ORDER if m in rows.columns and rows[m].isna().all()]


def headline(statistics: pd.DataFrame, *, reference: str = "xvertnet", others=("original", "clahe")) -> list[str]:
    """Sentences generated from the comparison: per other method, on how many measures ``reference``'s mean is
    better (and how many of those differ significantly), and which method is best most often."""
    sentences = []
    for other in others:
        if other == reference or other not in set(statistics["method"]):
            continue
        better = worse = significant = 0
        for (_, measure), part in statistics.groupby(["dataset", "measure"], sort=False):
            by_method = part.set_index("method")
            if reference not in by_method.index or other not in by_method.index:
                continue
            a, b = by_method.loc[reference, "mean"], by_method.loc[other, "mean"]
            if not (np.isfinite(a) and np.isfinite(b)) or a == b:
                continue
            if BETTER.get(measure, 1) * (a - b) > 0:
                better += 1
                significant += bool(by_method.loc[other, "significant"])
            else:
                worse += 1
        sentences.append(
            f"{reference} is better than {other} on {better} of {better + worse} measures "
            f"({significant} of them significant at p < {ALPHA})."
        )
    wins = {}
    for _, part in statistics.groupby(["dataset", "measure"], sort=False):
        best = [m for m, rank in _ranks(part).items() if rank == 1]
        for method in best:
            wins[method] = wins.get(method, 0) + 1
    if wins:
        leader = max(wins, key=wins.get)
        sentences.append(
            f"Best mean most often: {leader} ({wins[leader]} of "
            f"{statistics.groupby(['dataset', 'measure']).ngroups} measures)."
        )
    return sentences


def comparison_html(
    statistics: pd.DataFrame, methods: list[str], *, reference: str, notes: str, appendix: str = ""
) -> str:
    """The comparison as one HTML page for the report: the headline, then the table with n in every cell, then
    ``appendix`` (HTML, e.g. the fracture-detectability rows)."""
    import html

    rows = []
    for (dataset, measure), part in statistics.groupby(["dataset", "measure"], sort=False):
        ranks = _ranks(part)
        by_method = part.set_index("method")
        arrow = "&uarr;" if BETTER.get(measure, 1) > 0 else "&darr;"
        cells = []
        for method in methods:
            if method not in by_method.index:
                cells.append("<td>&ndash;</td>")
                continue
            row = by_method.loc[method]
            text = html.escape(f"{row['mean']:.4g}" + (f" ± {row['std']:.2g}" if np.isfinite(row["std"]) else ""))
            text += "*" if row["significant"] else ""
            rank = ranks.get(method, 0)
            text = f"<b>{text}</b>" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text
            cells.append(f"<td>{text}<br><small>n = {int(row['n'])}</small></td>")
        rows.append(
            f"<tr><td>{html.escape(str(dataset))}</td><td>{html.escape(LABELS.get(measure, measure))} {arrow}</td>"
            + "".join(cells)
            + "</tr>"
        )
    header = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    lead = "".join(f"<li>{html.escape(s)}</li>" for s in headline(statistics, reference=reference))
    note = html.escape(notes).replace("**best**", "<b>best</b>").replace("&lt;u&gt;second&lt;/u&gt;", "<u>second</u>")
    # Every style rule is scoped to the page's one <div>, so the report's landing page can embed the file as it is.
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Comparison</title><style>"
        ".xv-comparison{font-family:sans-serif;margin:1em 0;max-width:100%;overflow-x:auto}.xv-comparison table{border-collapse:collapse;font-size:90%}"
        ".xv-comparison td,.xv-comparison th{border:1px solid #bbb;padding:3px 6px;text-align:right}"
        ".xv-comparison td:nth-child(-n+2){text-align:left}"
        "</style></head><body><div class='xv-comparison'><h2>Comparison on the test split</h2>"
        f"<ul>{lead}</ul><table><tr><th>data set</th><th>measure</th>{header}</tr>{''.join(rows)}</table>"
        f"<p><small>{note} n = the ROIs each mean is over, after the method's own outliers are removed, so n "
        f"can differ between methods of one measure.</small></p>{appendix}</div></body></html>\n"
    )


def write_comparison_tables(
    statistics: pd.DataFrame,
    stem,
    *,
    reference: str = "xvertnet",
    undefined=(),
    crops=(),
    header: str = "",
    appendix: tuple[str, str] = ("", ""),
) -> None:
    """``stem``.csv (long, with p-values), ``stem``.md and ``stem``.tex (methods as columns, like Table 1), ``stem``.html
    (the headline and the table with n per cell, for the report);
    the notes name the ``undefined`` measures (no value on any ROI), which have no row, and the methods that enhanced
    the evaluation ROIs on their own (``crops``) instead of the whole image. ``header`` (e.g.
    :func:`xvertnet.provenance.made_by`) is the Markdown table's first paragraph; ``appendix`` (Markdown, HTML)
    follows the table in ``.md`` and ``.html`` (the fracture-detectability rows, :mod:`xvertnet.evaluation.detectability_join`)."""
    methods = ordered_methods(statistics["method"])
    md = ["| data set | measure | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    tex = [
        r"\begin{tabular}{ll" + "c" * len(methods) + "}",
        r"\hline",
        "data set & measure & " + " & ".join(methods) + r" \\",
        r"\hline",
    ]
    for (dataset, measure), part in statistics.groupby(["dataset", "measure"], sort=False):
        ranks = _ranks(part)
        by_method = part.set_index("method")
        arrow = "↑" if BETTER.get(measure, 1) > 0 else "↓"
        label = f"{LABELS.get(measure, measure)} {arrow}"
        md_cells = [_cell(by_method.loc[m], ranks.get(m, 0), "md") if m in by_method.index else "–" for m in methods]
        tex_cells = [_cell(by_method.loc[m], ranks.get(m, 0), "tex") if m in by_method.index else "--" for m in methods]
        md.append(f"| {dataset} | {label} | " + " | ".join(md_cells) + " |")
        tex_label = label.replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$")
        tex.append(f"{dataset} & {tex_label} & " + " & ".join(tex_cells) + r" \\")
    tex.append(r"\hline")
    sigma_note = ""
    if "lpc_si" in set(statistics["measure"]):  # which sigma_onf, read from the rows (recorded per ROI)
        lpc_rows = statistics[statistics["measure"] == "lpc_si"]
        sigma_note = " " + sigma_onf_note(lpc_rows["lpc_sigma_onf"] if "lpc_sigma_onf" in lpc_rows.columns else [])
        tex_note = sigma_note.strip().replace("_", r"\_").replace(r"σ\_onf", r"$\sigma_\mathrm{onf}$")
        tex.append(rf"\multicolumn{{{len(methods) + 2}}}{{l}}{{\footnotesize {tex_note}}} \\")
    tex.append(r"\end{tabular}")
    notes = (
        "\n\nMean ± std over the test-split evaluation ROIs after z-score outlier removal (|z| > 1.96); "
        f"**best**, <u>second</u>; * = differs from {reference} (Wilcoxon signed-rank, p < 0.05, union of both methods' "
        f"outliers removed); ↑/↓ = higher/lower is better.{sigma_note}"
    )
    notes += (
        " Every method enhanced the whole canonical image and the ROIs were cut from its output"
        + (f", except {', '.join(crops)} (it enhances the ROIs on their own: no whole-image measures)" if crops else "")
        + ". Vertebral CNR, edge and displayed CNR divide by the noise at a vertebral body's scale, from the method's "
        "output on the DRR's noise twin; learned methods: one training seed each in this run (they reproduce across "
        "machines only within the spread between seeds)."
    )
    if undefined:
        names = ", ".join(LABELS.get(m, m) for m in undefined)
        notes += f" Not shown, undefined on every ROI: {names}" + (
            " (NIQE needs at least 96 x 96 pixels)." if "niqe" in undefined else "."
        )
    notes += "\n"
    with atomic_path(f"{stem}.html", record_hash=True) as tmp:
        tmp.write_text(
            comparison_html(statistics, methods, reference=reference, notes=notes.strip(), appendix=appendix[1])
        )
    with atomic_path(f"{stem}.csv", record_hash=True) as tmp:
        statistics.to_csv(tmp, index=False)
    with atomic_path(f"{stem}.md", record_hash=True) as tmp:
        tmp.write_text(
            (f"{header}\n\n" if header else "") + "\n".join(md) + notes + (f"\n{appendix[0]}" if appendix[0] else "")
        )
    with atomic_path(f"{stem}.tex", record_hash=True) as tmp:
        tmp.write_text("\n".join(tex) + "\n")
