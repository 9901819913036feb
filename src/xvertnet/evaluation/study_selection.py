"""The design study's selection: which ROIs choose and which report, per-entry summaries, the selection score,
the do-no-harm rule, and nested selection with each report patient held out in turn.

Groups of ROIs by the data sets' manifests: ``selection`` (DRRs of ``select_split`` with a degradation in
``select_conditions``; the recommended entry is chosen here and nowhere else), ``held-out DRR`` (DRRs of
``report_split``) and ``real`` (real radiographs of ``report_split``: no ground truth, the paper's measures).
The selection score is the geometric mean of the ground-truth ratios to the original ROI (vertebral-body CNR
and boundary edge strength); the entry with the highest score is recommended."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pandas as pd

from xvertnet.errors import InvalidValueError
from xvertnet.evaluation.stats import recorded_param
from xvertnet.metrics import BETTER
from xvertnet.settings import FromConfig


@dataclasses.dataclass(frozen=True)
class StudySettings(FromConfig):
    """How the study judges its entries (config section ``study``); its variants are planned by :mod:`xvertnet.plan`."""

    SECTION: ClassVar[str] = "study"
    ELSEWHERE: ClassVar[tuple[str, ...]] = ("variants", "each_iteration", "seeds", "observer")

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
        harmed = harmed_measures(values, means.loc["original"], do_no_harm, tolerance)
        if harmed:
            refused[entry] = harmed
    return refused


NESTED = "nested-selected"


def harmed_measures(values, original, measures, tolerance: float) -> list[str]:
    """The do-no-harm rule: the ``measures`` on which ``values`` falls short of ``original`` (in the direction
    the measure counts as better) by more than ``tolerance`` of the original's magnitude, or is not measured."""
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
            harmed += [f"{measure} ({patient})" for measure in harmed_measures(values, original, do_no_harm, tolerance)]
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
