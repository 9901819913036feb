"""The design study's write-up in Markdown (summary, variants, conclusion, goal, nested folds) and its HTML page
(rendered by Python-Markdown)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from xvertnet.evaluation.stats import recorded_param, sigma_onf_note
from xvertnet.evaluation.study_selection import GROUND_TRUTH, GROUPS, NESTED, PAPER_MEASURES, group_means
from xvertnet.metrics import BETTER


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def _count(value) -> str:
    return "–" if value is None or not np.isfinite(value) else str(int(value))


#: The DRR columns of the study table: (column suffix, heading, digits).
DRR_COLUMNS = (
    ("cnr_ratio", "CNR", 3),
    ("edge_ratio", "edge", 3),
    ("displayed_contrast", "disp. contrast", 4),
    ("displayed_cnr", "disp. CNR", 2),
    ("seg_dice", "Dice", 3),
    ("seg_hd95", "HD95", 1),
)


def summary_markdown(summary: pd.DataFrame, chosen: str, score=GROUND_TRUTH, nested: bool = False) -> str:
    """The study table: the selection score and ground truth, task and display measures on the selection and the
    held-out DRRs, then the paper's measures on real images and the validation-loss spikes."""
    drr = [c for c in DRR_COLUMNS if f"drr_{c[0]}" in summary.columns and summary[f"drr_{c[0]}"].notna().any()]
    header = [
        "method",
        "sel score",
        *[f"sel {h}" for _, h, _ in drr],
        "held-out score",
        *[f"held-out {h}" for _, h, _ in drr],
        *[f"real {m}" for m in PAPER_MEASURES],
        "real wins vs orig",
        "real wins vs CLAHE",
        "val spikes",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        name = f"**{row['method']}** (chosen)" if row["method"] == chosen else row["method"]
        cells = [
            name,
            _fmt(row["sel_score"]),
            *[_fmt(row.get(f"sel_{c}", np.nan), d) for c, _, d in drr],
            _fmt(row["drr_score"]),
            *[_fmt(row.get(f"drr_{c}", np.nan), d) for c, _, d in drr],
            *[_fmt(row[f"real_{m}"], 4 if m == "tc" else 3) for m in PAPER_MEASURES],
            _count(row.get("real_wins_vs_original")) if row["method"] != "original" else "–",
            _count(row.get("real_wins_vs_clahe")) if row["method"] != "clahe" else "–",
            _count(row.get("val_spikes", np.nan)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    arrows = ", ".join(f"{m} {'↑' if BETTER[m] > 0 else '↓'}" for m in (*PAPER_MEASURES, "seg_hd95"))
    lines.append("")
    lines.append(
        "CNR and edge: vertebral-body contrast-to-noise ratio and boundary edge strength as ratios to the "
        "original ROI (ground truth from the projected vertebra masks); disp. contrast and disp. CNR: the "
        "vertebral contrast and CNR of the whole image as displayed (8-bit, default window); Dice and HD95 (px): "
        "the segmentation task's U-Net, trained on the training patients' enhanced ROIs. "
        f"Score = geometric mean of the ratios to the original of {', '.join(score)}. "
        + (
            "sel = the training patient's validation view (not chosen on: the nested selection chooses among the "
            "report patients, each held out in turn), "
            if nested
            else "sel = the selection images (chosen on), "
        )
        + "held-out = the report patients' DRRs, real = real radiographs. "
        f"Higher is better except {arrows.replace(' ↑', '').replace(' ↓', '')} where marked: {arrows}. "
        "val spikes: epochs whose validation loss exceeded 10x its phase's median, summed over the entry's "
        "iterations (– for methods that do not train). "
        + sigma_onf_note(summary["lpc_sigma_onf"] if "lpc_sigma_onf" in summary.columns else [])
    )
    return "\n".join(lines) + "\n"


def variant_markdown(table: pd.DataFrame, entry: str, references: list[str], settings: dict | None) -> str:
    """One variant's table: every measure per group, beside the reference methods."""
    methods = [*references, entry]
    means = group_means(table, methods)
    measures = [m for m in (*GROUND_TRUTH, *PAPER_MEASURES) if m in means.columns]
    lines = [f"# {entry}", ""]
    if settings is not None:
        lines += ["Settings: `" + json.dumps(settings, sort_keys=True) + "`", ""]
    lines += ["| group | measure | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for group in GROUPS:
        for measure in measures:
            values = [means.loc[(m, group), measure] if (m, group) in means.index else np.nan for m in methods]
            if all(not np.isfinite(v) for v in values):
                continue
            arrow = "↑" if BETTER.get(measure, 1) > 0 else "↓"
            lines.append(f"| {group} | {measure} {arrow} | " + " | ".join(_fmt(v, 4) for v in values) + " |")
    if "lpc_si" in measures:
        shown = table[table["method"].isin(methods) & table["group"].isin(GROUPS) & table["lpc_si"].notna()]
        lines += ["", sigma_onf_note([recorded_param(shown, "lpc_sigma_onf")])]
    return "\n".join(lines) + "\n"


def _compare_sentence(row, other_row, group: str, other: str) -> str:
    prefix = {"held-out DRR": "drr", "real": "real"}[group]
    better, worse = [], []
    for measure in PAPER_MEASURES:
        a, b = row[f"{prefix}_{measure}"], other_row[f"{prefix}_{measure}"]
        if np.isfinite(a) and np.isfinite(b):
            (better if BETTER[measure] * (a - b) > 0 else worse).append(f"{measure} {_fmt(a)} vs {_fmt(b)}")
    text = f"better than {other} on {len(better)} of {len(better) + len(worse)} paper measures"
    if better:
        text += f" ({'; '.join(better)})"
    if worse:
        text += f"; worse on {'; '.join(worse)}"
    return text


def conclusion_markdown(
    summary: pd.DataFrame,
    chosen: str,
    settings: dict[str, dict],
    *,
    paper_entry: str | None,
    score=GROUND_TRUTH,
    nested: bool | None = None,
    refused: dict[str, list[str]] | None = None,
    preamble: str = "",
) -> str:
    """The written conclusion: which variant, why, and how it does on held-out data against CLAHE and the original.

    ``refused`` (single selection with a do-no-harm rule that left no variant): the measures each variant harmed.
    ``preamble``: markdown right under the title (the nested selection's folds)."""
    by_method = summary.set_index("method")
    row = by_method.loc[chosen]
    lines = ["## Design study: conclusion", ""] + ([preamble, ""] if preamble else [])
    if refused is not None and nested is None:
        reasons = "; ".join(f"{entry}: {', '.join(measures)}" for entry, measures in refused.items())
        lines.append(
            f"**No variant passes the do-no-harm rule on the selection images (study.do_no_harm), or scores "
            f"above the original; nothing is recommended.** Harmed: {reasons or 'none'}. Shown is the entry "
            f"with the best selection score regardless, which the rule refused: **{chosen}**, score "
            f"{_fmt(row['sel_score'])}."
        )
    elif nested is not None:  # True: the nested selection's recommendation; False: it found none
        lines.append(
            f"Chosen on all report patients by the nested selection's rule (above): **{chosen}**. Its held-out "
            "numbers below are on the patients it was chosen on, so they flatter it; the nested row is the "
            "honest estimate."
            if nested
            else f"**No entry passes the nested selection's rule (above); nothing is recommended.** Shown is the entry "
            f"with the best score regardless, which the rule refused: **{chosen}**."
        )
    else:
        lines.append(
            f"Chosen on the selection DRRs by the score (geometric mean of the ratios to the original of "
            f"{', '.join(score)}): **{chosen}**, score {_fmt(row['sel_score'])} (CNR {_fmt(row['sel_cnr_ratio'])}x, "
            f"edge {_fmt(row['sel_edge_ratio'])}x the original)."
        )
    if chosen in settings:
        lines.append(f"Its settings: `{json.dumps(settings[chosen], sort_keys=True)}`.")
    lines.append("")
    lines.append(
        "### Held-out DRRs (the report patients' DRRs, also chosen on)"
        if nested is not None
        else "### Held-out DRRs (images not used for choosing)"
    )
    for other in ("original", "clahe"):
        if other not in by_method.index:
            continue
        other_row = by_method.loc[other]
        cnr, other_cnr = row["drr_cnr_ratio"], other_row["drr_cnr_ratio"]
        verdict = "beats" if cnr > other_cnr else "does not beat"
        lines.append(
            f"- Ground-truth vertebral CNR: {chosen} {_fmt(cnr)}x vs {other} {_fmt(other_cnr)}x: it **{verdict} "
            f"{other}**; edge strength {_fmt(row['drr_edge_ratio'])}x vs {_fmt(other_row['drr_edge_ratio'])}x."
        )
        lines.append(f"- Paper measures on held-out DRRs: {_compare_sentence(row, other_row, 'held-out DRR', other)}.")
    lines.append("")
    lines.append("### Real radiographs (no ground truth)")
    for other in ("original", "clahe"):
        if other in by_method.index:
            lines.append(f"- {_compare_sentence(row, by_method.loc[other], 'real', other)}.")
    others = [m for m in summary.loc[summary["role"] == "reference", "method"] if m not in ("original", "clahe")]
    for other in others:
        other_row = by_method.loc[other]
        lines += [
            "",
            f"Against {other}: held-out CNR {_fmt(row['drr_cnr_ratio'])}x vs {_fmt(other_row['drr_cnr_ratio'])}x, "
            f"edge {_fmt(row['drr_edge_ratio'])}x vs {_fmt(other_row['drr_edge_ratio'])}x; on real radiographs "
            f"{_compare_sentence(row, other_row, 'real', other)}.",
        ]
    if paper_entry and paper_entry in by_method.index and paper_entry != chosen:
        paper = by_method.loc[paper_entry]
        lines += [
            "",
            f"The paper's recipe ({paper_entry}): selection score {_fmt(paper['sel_score'])}, held-out CNR "
            f"{_fmt(paper['drr_cnr_ratio'])}x, edge {_fmt(paper['drr_edge_ratio'])}x.",
        ]
    variants = summary[summary["role"] == "variant"]
    beating = (
        variants[variants["drr_cnr_ratio"] > by_method.loc["clahe", "drr_cnr_ratio"]]["method"].tolist()
        if "clahe" in by_method.index
        else []
    )
    lines.append("")
    if beating:
        lines.append(f"Variants above CLAHE on held-out vertebral CNR: {', '.join(beating)}.")
    else:
        lines.append("**No variant beats CLAHE on held-out ground-truth vertebral CNR.**")
    if "lpc_sigma_onf" in summary.columns:
        lines += ["", sigma_onf_note(summary["lpc_sigma_onf"])]
    return "\n".join(lines) + "\n"


#: The design study's goal on held-out DRRs: these measures, against CLAHE, each with p < 0.05.
GOAL_MEASURES = ("cnr_ratio", "edge_ratio", "displayed_contrast", "displayed_cnr", "seg_dice")


def goal_markdown(table: pd.DataFrame, chosen: str, other: str = "clahe") -> str:
    """Where the chosen entry stands against ``other`` on the held-out DRRs: per goal measure the means,
    the paired Wilcoxon signed-rank p over ROIs (ROIs of one patient are not independent, so it overstates
    the evidence) and, per report patient, which method is ahead."""
    from xvertnet.evaluation.stats import wilcoxon_p

    held = table[table["group"].eq("held-out DRR") & table["method"].isin([chosen, other])]
    lines = [
        f"### The goal: {chosen} against {other} on the report patients' DRRs",
        "",
        "| measure | " + f"{chosen} | {other} | ahead | Wilcoxon p (ROIs) | patients ahead |",
        "|---|---|---|---|---|---|",
    ]
    keys = [k for k in ("dataset", "image_id", "roi") if k in held.columns]
    for measure in GOAL_MEASURES:
        if measure not in held.columns or held[measure].isna().all():
            continue
        wide = held.pivot_table(index=keys, columns="method", values=measure).dropna()
        if not {chosen, other} <= set(wide.columns) or wide.empty:
            continue
        a, b = wide[chosen], wide[other]
        p = wilcoxon_p(a, b)
        ahead = chosen if BETTER[measure] * (a.mean() - b.mean()) > 0 else other
        patients = ""
        if "patient" in held.columns:
            per_patient = held.pivot_table(index="patient", columns="method", values=measure)
            if {chosen, other} <= set(per_patient.columns):
                wins = int((BETTER[measure] * (per_patient[chosen] - per_patient[other]) > 0).sum())
                patients = f"{wins} of {len(per_patient)}"
        shown_p = "–" if not np.isfinite(p) else f"{p:.2g}"
        lines.append(
            f"| {measure} | {_fmt(a.mean(), 4)} | {_fmt(b.mean(), 4)} | {ahead} | {shown_p} (n = {len(wide)}) | {patients} |"
        )
    return "\n".join(lines) + "\n"


def nested_markdown(
    folds: pd.DataFrame,
    with_nested: pd.DataFrame,
    final: str | None,
    ranking: pd.DataFrame,
    *,
    score,
    do_no_harm,
    tolerance: float,
) -> str:
    """The nested selection: the folds, the goal table of the ``nested-selected`` row against CLAHE, the final choice."""
    rule = (
        (
            f"no mean of {', '.join(do_no_harm)} below the original's"
            + (f" by more than {tolerance:.0%}" if tolerance else "")
            + " on any patient it is chosen on"
        )
        if do_no_harm
        else "none"
    )
    lines = [
        "### Nested selection (each report patient held out in turn)",
        "",
        f"Score: geometric mean over the choosing patients of the per-patient geometric mean of {', '.join(score)} "
        f"as ratios to the original. Do-no-harm rule: {rule}.",
        "",
        "| held-out patient | chosen on | chosen entry | its score there | entries refused by the rule |",
        "|---|---|---|---|---|",
    ]
    for fold in folds.to_dict("records"):
        lines.append(
            f"| {fold['held_out']} | {fold['chosen_on']} | {fold['chosen']} | {_fmt(fold['score'])} | "
            f"{fold['refused']} of {fold['entries']} |"
        )
    lines += ["", goal_markdown(with_nested, NESTED).replace("### The goal:", "#### The goal, nested:")]
    lines += [
        "#### Chosen on all report patients (the recommendation; its unbiased estimate is the nested row above)",
        "",
        f"**{final or 'none: no entry passes the do-no-harm rule'}**",
        "",
        "| entry | score | eligible | harmed |",
        "|---|---|---|---|",
    ]
    for row in ranking.to_dict("records"):
        lines.append(
            f"| {row['entry']} | {_fmt(row['score'])} | {'yes' if row['eligible'] else 'no'} | {row['harmed'] or '–'} |"
        )
    return "\n".join(lines) + "\n"


def markdown_to_html(text: str, title: str) -> str:
    """The conclusion as an HTML page for the Snakemake report (Python-Markdown, with its pipe tables)."""
    import html

    import markdown

    # image ids and names come from users' manifests: escaped first, so no text can become markup
    body = markdown.markdown(html.escape(text, quote=False), extensions=["tables"], output_format="html")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>\n"
        + body
        + "\n</body></html>\n"
    )
