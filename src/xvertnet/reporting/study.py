"""The design study: XVertNet's open design choices judged on held-out data.

Every study entry (a variant of the `train` settings after T iterations) has measures per
evaluation ROI in ``per_roi.csv``. The ROIs fall into groups by the data set manifest:

* ``selection``: DRRs of ``select_split`` with a degradation in ``select_conditions``. The
  recommended entry is chosen here and nowhere else.
* ``held-out DRR``: DRRs of ``report_split`` (another view, and degradations never used for
  choosing among them).
* ``real``: real radiographs of ``report_split`` (no ground truth; the paper's measures).

Judgement, in order: ground truth on DRRs (vertebral-body CNR and boundary edge strength as
ratios to the original ROI; the selection score is their geometric mean), then the paper's
measures, then the visual panels. The entry with the highest selection score is recommended;
its held-out numbers are what the conclusion reports.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from xvertnet.errors import InvalidValueError
from xvertnet.evaluation.stats import recorded_param, sigma_onf_note
from xvertnet.io.atomic import atomic_path
from xvertnet.metrics import BETTER
from xvertnet.settings import FromConfig


@dataclasses.dataclass(frozen=True)
class StudySettings(FromConfig):
    """How the study judges its entries (config section ``study``); its variants are planned by :mod:`xvertnet.plan`."""

    SECTION: ClassVar[str] = "study"
    ELSEWHERE: ClassVar[tuple[str, ...]] = ("variants", "each_iteration")

    select_split: str = "val"
    select_conditions: tuple[str, ...] = ("standard", "low_dose", "blur")
    score: tuple[str, ...] = ("cnr_ratio", "edge_ratio")
    report_split: str = "test"
    patient_independent: bool = True
    references: tuple[str, ...] = ("original", "clahe", "preprocessed")
    #: Nested selection: each report patient in turn is held out, the entry is chosen on the other report
    #: patients, and the chosen entries' results on the held-out patients form the ``nested-selected`` row.
    nested: bool = False
    #: Measures on which an entry must not fall below the original: on any patient it is chosen on (nested),
    #: or on the selection images (single selection).
    do_no_harm: tuple[str, ...] = ()
    #: Relative slack of that rule: below (1 - harm_tolerance) x the original's mean counts as harm.
    harm_tolerance: float = 0.0

    def __post_init__(self):
        unknown = [m for m in self.score if m not in BETTER or BETTER[m] < 0]
        if not self.score or unknown:
            raise InvalidValueError(
                f"study.score needs measures where higher is better, got {unknown or list(self.score)}"
            )
        unknown = [m for m in self.do_no_harm if m not in BETTER]
        if unknown:
            raise InvalidValueError(f"study.do_no_harm: unknown measures {unknown}")
        if not 0 <= self.harm_tolerance < 1:
            raise InvalidValueError(f"study.harm_tolerance must be in [0, 1), got {self.harm_tolerance}")


GROUND_TRUTH = ("cnr_ratio", "edge_ratio")
#: Task and display-referred measures reported for the DRR groups beside the ground truth.
TASK_MEASURES = ("displayed_contrast", "displayed_cnr", "seg_dice", "seg_hd95")
PAPER_MEASURES = ("entropy", "tc", "lpc_si", "tmqi", "piqe", "brisque", "niqe")
GROUPS = ("selection", "held-out DRR", "real")
REAL_CONDITION = "real"


def label_groups(
    per_roi: pd.DataFrame,
    manifests: dict[str, pd.DataFrame],
    *,
    select_split: str,
    select_conditions,
    report_split: str,
    patient_independent: bool = True,
) -> pd.DataFrame:
    """``per_roi`` with the manifest's ``view`` and ``condition`` and the study ``group`` of every row."""
    frames = []
    for dataset, manifest in manifests.items():
        columns = [c for c in ("image_id", "view", "condition", "patient") if c in manifest.columns]
        frames.append(manifest[columns].assign(dataset=dataset))
    info = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["dataset", "image_id"])
    for column in ("view", "condition"):
        if column not in info.columns:
            info[column] = ""
    table = per_roi.drop(columns=[c for c in ("view", "condition", "patient") if c in per_roi.columns])
    table = table.merge(info, on=["dataset", "image_id"], how="left")
    table[["view", "condition"]] = table[["view", "condition"]].fillna("")
    is_real = table["condition"].eq(REAL_CONDITION) | table["view"].eq("")
    selection = (
        table["split"].eq(select_split) & table["condition"].isin(list(select_conditions)) & ~is_real
    ).to_numpy()
    reported = table["split"].eq(report_split).to_numpy() & ~selection  # an image chosen on is never held out
    if "patient" in table.columns:  # selection never sees a report patient
        patients = table["patient"].fillna("").astype(str)
        shared = sorted(set(patients[selection]) & set(patients[reported & ~is_real.to_numpy()]) - {""})
        if shared and patient_independent:
            raise InvalidValueError(
                f"patients {shared} are both selection and report patients of the study; give them one "
                "split (config demo.patients), or set study.patient_independent: false for a one-patient "
                "data set"
            )
        table.attrs["shared_patients"] = shared
    group = np.full(len(table), "other", dtype=object)
    group[selection] = "selection"
    group[reported & ~is_real.to_numpy()] = "held-out DRR"
    group[reported & is_real.to_numpy()] = "real"
    table["group"] = group
    return table


def group_means(table: pd.DataFrame, methods) -> pd.DataFrame:
    """Mean of every measure per (method, group); rows for ``methods`` only."""
    measures = [m for m in (*GROUND_TRUTH, *TASK_MEASURES, *PAPER_MEASURES, "consistency_ssim") if m in table.columns]
    part = table[table["method"].isin(list(methods)) & table["group"].isin(GROUPS)]
    means = part.groupby(["method", "group"])[measures].mean()
    means["n_rois"] = part.groupby(["method", "group"]).size()
    return means


def selection_score(row, original, measures=GROUND_TRUTH) -> float:
    """Geometric mean over ``measures`` of the group mean's ratio to the original's (1 = the original).

    ``cnr_ratio`` and ``edge_ratio`` are ratios to the original ROI already and enter as they are.
    A ratio <= 0 (e.g. a negative displayed contrast) makes the score 0; a missing measure NaN."""
    ratios = []
    for measure in measures:
        value = row.get(measure, np.nan)
        if measure not in GROUND_TRUTH:
            reference = original.get(measure, np.nan) if original is not None else np.nan
            value = value / reference if np.isfinite(reference) and reference > 0 else np.nan
        if not np.isfinite(value):
            return float("nan")
        ratios.append(value)
    return _geometric_mean(ratios)


def _geometric_mean(values) -> float:
    """Geometric mean of positive values; 0 when any is <= 0 (a displayed contrast below zero)."""
    if min(values) <= 0:
        return 0.0
    return float(np.exp(np.mean(np.log(values))))


def _wins(means: pd.DataFrame, method: str, other: str, group: str) -> int:
    """How many of the paper's measures ``method`` beats ``other`` on (group means)."""
    if (method, group) not in means.index or (other, group) not in means.index:
        return 0
    a, b = means.loc[(method, group)], means.loc[(other, group)]
    return int(
        sum(
            1
            for m in PAPER_MEASURES
            if m in means.columns and np.isfinite(a[m]) and np.isfinite(b[m]) and BETTER[m] * (a[m] - b[m]) > 0
        )
    )


def summarise(
    table: pd.DataFrame,
    entries: list[str],
    references: list[str],
    *,
    score=GROUND_TRUTH,
    spikes: dict[str, int] | None = None,
) -> pd.DataFrame:
    """One row per study entry and reference method: selection score, held-out and real-image means, wins.

    ``score``: the measures of :func:`selection_score`. ``spikes``: validation-loss spikes per entry
    (:func:`xvertnet.model.training.validation_spikes`, summed over its iterations). ``lpc_sigma_onf`` names the
    LPC-SI bandwidth the method's grouped ROIs were measured with.
    """
    methods = [*references, *entries]
    means = group_means(table, methods if "original" in methods else ["original", *methods])
    rows = []
    for method in methods:
        row = {"method": method, "role": "reference" if method in references else "variant"}
        measured = table[table["method"].eq(method) & table["group"].isin(GROUPS)]
        if "lpc_si" in measured.columns:
            measured = measured[measured["lpc_si"].notna()]
        row["lpc_sigma_onf"] = recorded_param(measured, "lpc_sigma_onf")
        for group in GROUPS:
            values = means.loc[(method, group)] if (method, group) in means.index else pd.Series(dtype=float)
            prefix = {"selection": "sel", "held-out DRR": "drr", "real": "real"}[group]
            row[f"{prefix}_n"] = int(values.get("n_rois", 0) or 0)
            if group != "real":
                for measure in (*GROUND_TRUTH, *TASK_MEASURES):
                    row[f"{prefix}_{measure}"] = float(values.get(measure, np.nan))
                original = means.loc[("original", group)] if ("original", group) in means.index else None
                row[f"{prefix}_score"] = selection_score(values, original, score)
            if group != "selection":
                for measure in PAPER_MEASURES:
                    row[f"{prefix}_{measure}"] = float(values.get(measure, np.nan))
                for other in ("original", "clahe"):
                    if other != method:
                        row[f"{prefix}_wins_vs_{other}"] = _wins(means, method, other, group)
        row["val_spikes"] = (spikes or {}).get(method, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def recommend(summary: pd.DataFrame, refused=None) -> str | None:
    """The variant with the best selection score (ties: more paper-measure wins over CLAHE on held-out DRRs).

    ``refused``: None, or the variants the do-no-harm rule refused (:func:`refused_on_selection`); then a variant
    must also score above the original's 1, as in the nested selection, and None means none is left."""
    variants = summary[(summary["role"] == "variant") & summary["sel_score"].notna()]
    if variants.empty:
        raise InvalidValueError("no study variant has a selection score (no selection ROIs with ground truth)")
    if refused is not None:
        variants = variants[~variants["method"].isin(list(refused)) & (variants["sel_score"] > 1.0)]
        if variants.empty:
            return None
    ranked = variants.sort_values(["sel_score", "drr_wins_vs_clahe"], ascending=[False, False])
    return str(ranked.iloc[0]["method"])


def refused_on_selection(table: pd.DataFrame, entries, do_no_harm, tolerance: float = 0.0) -> dict[str, list[str]]:
    """The do-no-harm rule on the selection images (the single selection): ``{entry: measures harmed}`` for every
    entry whose selection mean of a ``do_no_harm`` measure falls below the original's by more than ``tolerance``
    (relative), or is not measured."""
    _require_measures(table, do_no_harm)
    part = table[table["group"].eq("selection")]
    means = part.groupby("method")[list(do_no_harm)].mean()
    if "original" not in means.index or means.loc["original"].isna().any():
        unmeasured = (
            list(do_no_harm) if "original" not in means.index else means.columns[means.loc["original"].isna()].tolist()
        )
        raise InvalidValueError(f"study.do_no_harm: the original has no value of {unmeasured} on the selection images")
    refused = {}
    for entry in entries:
        values = means.loc[entry] if entry in means.index else pd.Series(dtype=float)
        harmed = _harmed(values, means.loc["original"], do_no_harm, tolerance)
        if harmed:
            refused[entry] = harmed
    return refused


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
    lines = ["# Design study: conclusion", ""] + ([preamble, ""] if preamble else [])
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
        "## Held-out DRRs (the report patients' DRRs, also chosen on)"
        if nested is not None
        else "## Held-out DRRs (images not used for choosing)"
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
    lines.append("## Real radiographs (no ground truth)")
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
        f"## The goal: {chosen} against {other} on the report patients' DRRs",
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


NESTED = "nested-selected"


def _harmed(values, original, measures, tolerance: float) -> list[str]:
    """The ``measures`` on which ``values`` falls short of ``original`` by more than ``tolerance`` (relative)."""
    harmed = []
    for measure in measures:
        value, reference = values.get(measure, np.nan), original.get(measure, np.nan)
        if not (np.isfinite(value) and np.isfinite(reference)):
            harmed.append(measure)  # not measured: cannot show it does no harm
        elif BETTER[measure] * (value - reference) < -tolerance * abs(reference):
            harmed.append(measure)
    return harmed


def _require_measures(table: pd.DataFrame, measures) -> None:
    """Fail, naming them, when measures of study.score / study.do_no_harm are not in per_roi.csv."""
    missing = sorted(set(measures) - set(table.columns))
    if missing:
        raise InvalidValueError(f"study: measures {missing} of study.score / study.do_no_harm are not in per_roi.csv")


def _patients_as_text(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its patient ids as text (ids such as 1, 2 are read from a manifest as numbers)."""
    patient = table["patient"].astype(object)
    return table.assign(patient=patient.where(patient.notna(), "").astype(str))


def choose_on_patients(
    table: pd.DataFrame, entries, patients, *, score=GROUND_TRUTH, do_no_harm=(), tolerance: float = 0.0
) -> tuple[str | None, pd.DataFrame]:
    """The entry chosen on the held-out DRRs of ``patients``, and the ranking it came from.

    Per patient, an entry's score is :func:`selection_score` of its patient means against the original's;
    its overall score is the geometric mean over the patients (0 if any is 0). It is eligible only if, on
    every one of the patients, no ``do_no_harm`` measure's mean falls below the original's by more than
    ``tolerance`` (relative), and it scores above 1 (the original's score). The highest overall score among
    the eligible entries wins; ties keep the order of ``entries`` (None: none eligible).
    """
    if not entries:
        raise InvalidValueError("study: no entries to choose from")
    _require_measures(table, {*score, *do_no_harm})
    patients = [str(p) for p in patients]
    table = _patients_as_text(table)
    part = table[table["group"].eq("held-out DRR") & table["patient"].isin(patients)]
    measures = sorted({*score, *do_no_harm})
    means = part.groupby(["method", "patient"])[measures].mean()
    rows = []
    for entry in entries:
        scores, harmed = [], []
        for patient in patients:
            if (entry, patient) not in means.index or ("original", patient) not in means.index:
                scores.append(np.nan)
                continue
            values, original = means.loc[(entry, patient)], means.loc[("original", patient)]
            scores.append(selection_score(values, original, score))
            harmed += [f"{measure} ({patient})" for measure in _harmed(values, original, do_no_harm, tolerance)]
        finite = bool(np.isfinite(scores).all()) and len(scores) > 0
        overall = _geometric_mean(scores) if finite else float("nan")
        # the original scores 1 by construction: an entry that scores no better is no reason to change anything
        rows.append(
            {
                "entry": entry,
                "score": overall,
                **{f"score_{p}": v for p, v in zip(patients, scores)},
                "harmed": ", ".join(harmed),
                "eligible": finite and not harmed and overall > 1.0,
            }
        )
    ranking = pd.DataFrame(rows).sort_values("score", ascending=False, na_position="last", kind="stable")
    eligible = ranking[ranking["eligible"]]
    return (str(eligible.iloc[0]["entry"]) if not eligible.empty else None), ranking


def nested_selection(table: pd.DataFrame, entries, *, score=GROUND_TRUTH, do_no_harm=(), tolerance: float = 0.0):
    """Leave-one-report-patient-out selection: an honest estimate of what the selection rule delivers.

    For every report patient p, the entry is chosen (:func:`choose_on_patients`) on the other report
    patients' held-out DRRs and its rows on p become the ``nested-selected`` method (the original's rows
    when no entry is eligible: doing nothing does no harm). Returns (folds, table with the
    ``nested-selected`` rows added, the entry chosen on all report patients, its ranking).
    """
    if "patient" not in table.columns:
        raise InvalidValueError("study.nested needs the manifest's `patient` column (which patient every DRR shows)")
    table = _patients_as_text(table)
    held = table[table["group"].eq("held-out DRR")]
    patients = sorted(p for p in held["patient"].unique() if p)
    if len(patients) < 2:
        raise InvalidValueError(f"study.nested needs at least two report patients with DRRs, got {patients}")
    folds, nested = [], []
    for patient in patients:
        others = [p for p in patients if p != patient]
        chosen, ranking = choose_on_patients(
            table, entries, others, score=score, do_no_harm=do_no_harm, tolerance=tolerance
        )
        used = chosen or "original"
        rows = held[held["patient"].eq(patient) & held["method"].eq(used)]
        nested.append(rows.assign(method=NESTED))
        refused = ranking.loc[~ranking["eligible"].astype(bool), "entry"].tolist()
        folds.append(
            {
                "held_out": patient,
                "chosen_on": ", ".join(others),
                "chosen": chosen or "none (original kept)",
                "score": float(ranking.set_index("entry").loc[chosen, "score"]) if chosen else float("nan"),
                "refused": len(refused),
                "entries": len(ranking),
            }
        )
    final, ranking = choose_on_patients(
        table, entries, patients, score=score, do_no_harm=do_no_harm, tolerance=tolerance
    )
    return pd.DataFrame(folds), pd.concat([table, *nested], ignore_index=True), final, ranking


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
        "## Nested selection (each report patient held out in turn)",
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
    lines += ["", goal_markdown(with_nested, NESTED).replace("## The goal:", "### The goal, nested:")]
    lines += [
        "### Chosen on all report patients (the recommendation; its unbiased estimate is the nested row above)",
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


def panel_image_ids(table: pd.DataFrame) -> list[str]:
    """The panel's images: a report patient's clean and low-dose DRR (the first report patient with both) and the
    real radiographs, so that the panel always shows a real image and a low-dose one."""
    held = table[table["group"].eq("held-out DRR")]
    chosen = []
    if "patient" in held.columns and held["patient"].notna().any():
        for _, part in held.groupby("patient", sort=True):
            ids = [
                part.loc[part["condition"].eq(c), "image_id"].iloc[0]
                for c in ("standard", "low_dose")
                if part["condition"].eq(c).any()
            ]
            if len(ids) == 2:
                chosen = ids
                break
    if not chosen:
        chosen = held[held["condition"].isin(["standard", "low_dose"])]["image_id"].drop_duplicates().tolist()[:2]
    real = table[table["group"].eq("real")]["image_id"].drop_duplicates().tolist()
    return [*chosen, *real][:4]


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


def write_study(
    per_roi: pd.DataFrame,
    manifests: dict[str, pd.DataFrame],
    out_dir,
    *,
    entries: list[str],
    references: list[str],
    settings: dict[str, dict],
    enhanced: dict[str, list],
    select_split: str,
    select_conditions,
    report_split: str,
    paper_entry: str | None = None,
    panel_images: list[str] | None = None,
    score=GROUND_TRUTH,
    spikes: dict[str, int] | None = None,
    patient_independent: bool = True,
    nested: bool = False,
    do_no_harm=(),
    harm_tolerance: float = 0.0,
) -> str:
    """Every study output into ``out_dir``; returns the recommended entry.

    ``summary.{csv,md}``, ``conclusion.{md,html}``, ``grouped_per_roi.csv``, with ``nested`` also
    ``nested.csv`` (the folds), and, per entry, ``variants/<entry>.md`` and ``panels/<entry>.png`` (the
    entry beside the references). Returns ``"none"`` when the selection finds no eligible entry (only with
    ``do_no_harm`` or ``nested``).
    """
    from xvertnet.reporting.report_figures import visual_panel

    out_dir = Path(out_dir)
    (out_dir / "variants").mkdir(parents=True, exist_ok=True)
    (out_dir / "panels").mkdir(parents=True, exist_ok=True)
    table = label_groups(
        per_roi,
        manifests,
        select_split=select_split,
        select_conditions=select_conditions,
        report_split=report_split,
        patient_independent=patient_independent,
    )
    summary = summarise(table, entries, references, score=score, spikes=spikes)
    nested_text, refused = "", None
    if nested:
        folds, with_nested, final, ranking = nested_selection(
            table, entries, score=score, do_no_harm=do_no_harm, tolerance=harm_tolerance
        )
        nested_text = nested_markdown(
            folds, with_nested, final, ranking, score=score, do_no_harm=do_no_harm, tolerance=harm_tolerance
        )
        with atomic_path(out_dir / "nested.csv") as tmp:
            folds.to_csv(tmp, index=False)
        # with none eligible, the conclusion and panels show the best score regardless, and say so
        chosen = final or str(ranking.iloc[0]["entry"])
    else:
        refused = refused_on_selection(table, entries, do_no_harm, harm_tolerance) if do_no_harm else None
        final = recommend(summary, refused)
        # with every variant refused by the rule, the conclusion and panels show the best score regardless
        chosen = final or recommend(summary)
    with atomic_path(out_dir / "grouped_per_roi.csv") as tmp:
        table.to_csv(tmp, index=False)
    recommended = "none" if final is None else chosen
    with atomic_path(out_dir / "summary.csv") as tmp:
        summary.assign(recommended=summary["method"].eq(recommended)).to_csv(tmp, index=False)
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text(summary_markdown(summary, chosen, score, nested=nested))
    conclusion = conclusion_markdown(
        summary,
        chosen,
        settings,
        paper_entry=paper_entry,
        score=score,
        nested=(final is not None) if nested else None,
        refused=refused if not nested and final is None else None,
        preamble=nested_text,
    )
    conclusion += "\n" + goal_markdown(table, chosen)
    if table.attrs.get("shared_patients"):
        conclusion += (
            f"\n**Not patient-independent:** {', '.join(table.attrs['shared_patients'])} gave both selection and "
            "report images (study.patient_independent: false).\n"
        )
    with atomic_path(out_dir / "conclusion.md") as tmp:
        tmp.write_text(conclusion)
    with atomic_path(out_dir / "conclusion.html") as tmp:
        tmp.write_text(
            markdown_to_html(
                conclusion + "\n" + summary_markdown(summary, chosen, score, nested=nested), "XVertNet design study"
            )
        )
    if panel_images is None:
        panel_images = panel_image_ids(table)
    for entry in entries:
        with atomic_path(out_dir / "variants" / f"{entry}.md") as tmp:
            tmp.write_text(variant_markdown(table, entry, references, settings.get(entry)))
        shown = {method: enhanced[method] for method in [*references, entry] if method in enhanced}
        if entry in shown:
            visual_panel(shown, out_dir / "panels" / f"{entry}.png", image_ids=panel_images, values=table)
    return recommended
