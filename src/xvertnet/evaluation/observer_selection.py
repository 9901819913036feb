"""Choosing a setting on the observer's AUC, nested by patient: which CLAHE clip limit would a study pick, and what does
that pick deliver on a patient it never saw?

A curve of CLAHE over clip limits shows every setting; quoting its best point would choose the setting on the very
patients it is reported on. The honest comparator is a nested choice, made the way a design study chooses:

* **Per patient, on that patient's images alone**, the observer's AUC of every method (:func:`patient_aucs`): for each
  fracture type, the template is trained on the patient's even noise realisations and tested on the odd ones, and the
  other way round (grades pooled, every view and level of the patient); its AUC is then read in each region and
  averaged over the types. No patient's number depends on another patient's images, so choosing on some patients and
  reporting on another keeps them apart, down to the observer's template.
* **Nested choice** (:func:`nested_choice`, the design study's rule): each patient in turn is held out. Among the
  candidates, the one with the highest score on the other patients is chosen (per patient, its AUC behind the heart
  over the original's; over patients, the geometric mean), if on every one of them it is at least as detectable as
  the original above the heart (do no harm, the same rule for every candidate) and its score exceeds 1; otherwise
  the original is kept (doing nothing does no harm). The chosen candidate's AUC on the held-out patient, against the
  original's there, is what the choice delivers.

With three held-out patients there are three folds: the per-fold numbers say what happened, not whether it is
significant (no test over three patients can reach p < 0.05).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xvertnet.evaluation.observer import auc, observer_scores

#: The regions a choice looks at: where it must help, and where it must not harm.
TARGET_REGION, GUARD_REGION = "behind_heart", "above_heart"


def patient_aucs(patches: dict, cases: pd.DataFrame, settings, *, observer: str = "cho", observers=()) -> pd.DataFrame:
    """Per method, patient and region: the observer's AUC from templates trained on that patient's images only (grades
    pooled, averaged over the fracture types; module docstring). ``settings`` is the study's
    (:class:`xvertnet.evaluation.detectability.DetectabilitySettings`). With ``observers``, every one of them, in
    an ``observer`` column (each patient's templates are trained once for all of them)."""
    wanted = tuple(observers) or (observer,)
    rows = []
    folds = cases["realisation"].to_numpy() % 2
    for patient in sorted(cases["patient"].astype(str).unique()):
        mine = cases["patient"].astype(str).eq(patient)
        for kind in settings.kinds:
            of_kind = mine & cases["kind"].eq(kind)
            present = cases.index[of_kind & cases["present"] & cases["grade"].isin(settings.grades)].to_numpy()
            absent = cases.index[of_kind & ~cases["present"]].to_numpy()
            if len(present) < 4 or len(absent) < 4:
                continue
            for name, values in patches.items():
                scores = observer_scores(
                    values[present], values[absent], folds[present], folds[absent], settings.observer
                )
                for region in (TARGET_REGION, GUARD_REGION):
                    keep_p = cases.loc[present, "region"].eq(region).to_numpy()
                    keep_a = cases.loc[absent, "region"].eq(region).to_numpy()
                    if keep_p.sum() < 2 or keep_a.sum() < 2:
                        continue
                    for chosen in wanted:
                        p_scores, a_scores = scores[chosen]
                        rows.append(
                            {
                                "method": name,
                                "observer": chosen,
                                "patient": patient,
                                "kind": kind,
                                "region": region,
                                "auc": auc(p_scores[keep_p], a_scores[keep_a]),
                                "present": int(keep_p.sum()),
                                "absent": int(keep_a.sum()),
                            }
                        )
    keys = ["method", "observer", "patient", "region"] if observers else ["method", "patient", "region"]
    columns = [*keys, "auc", "present", "absent"]
    if not rows:
        return pd.DataFrame(columns=columns)
    by_kind = pd.DataFrame(rows)
    return (
        by_kind.groupby(keys, sort=False)
        .agg(auc=("auc", "mean"), present=("present", "sum"), absent=("absent", "sum"))
        .reset_index()[columns]
    )


def wide_aucs(aucs: pd.DataFrame) -> pd.DataFrame:
    """:func:`patient_aucs`'s table as the design study's selection reads it: a row per method and patient, the two
    regions' AUCs as the measures ``fracture_auc_behind_heart`` and ``fracture_auc_above_heart``."""
    wide = aucs.pivot_table(index=["method", "patient"], columns="region", values="auc").reset_index()
    wide = wide.rename(columns={region: f"fracture_auc_{region}" for region in (TARGET_REGION, GUARD_REGION)})
    wide["group"] = "held-out DRR"
    return wide


def nested_choice(
    aucs: pd.DataFrame, candidates, *, reference: str = "original", tolerance: float = 0.0
) -> pd.DataFrame:
    """One row per held-out patient: the candidate chosen on the other patients (module docstring), its AUC behind the
    heart on the held-out patient and the reference's there. ``aucs`` is :func:`patient_aucs`'s table.

    The choice is the design study's own (:func:`xvertnet.evaluation.study_selection.choose_on_patients`), with the
    observer's AUC behind the heart as the score (per patient, the ratio to the original's; over patients, their
    geometric mean, which must exceed 1) and its AUC above the heart as the do-no-harm measure (relative
    ``tolerance``, 0 by default)."""
    from xvertnet.evaluation.study_selection import choose_on_patients

    wide = wide_aucs(aucs)
    score, guard = f"fracture_auc_{TARGET_REGION}", f"fracture_auc_{GUARD_REGION}"
    patients = sorted(aucs.loc[aucs["region"].eq(TARGET_REGION), "patient"].unique())
    candidates = [name for name in candidates if name != reference]
    auc = wide.set_index(["method", "patient"])[score]

    def mean_auc(method, patients):
        return float(np.mean([auc.get((method, patient), np.nan) for patient in patients]))

    rows = []
    for held_out in patients:
        others = [patient for patient in patients if patient != held_out]
        chosen, ranking = choose_on_patients(
            wide, candidates, others, score=(score,), do_no_harm=(guard,), tolerance=tolerance
        )
        refused = ranking[ranking["harmed"].astype(bool)]
        used = chosen or reference
        rows.append(
            {
                "held_out": held_out,
                "chosen_on": ", ".join(others),
                "chosen": chosen or f"none ({reference} kept)",
                "score": float(ranking.set_index("entry").loc[chosen, "score"]) if chosen else float("nan"),
                "refused": "; ".join(
                    f"{row.entry} harms {row.harmed.replace(guard, 'above the heart')}" for row in refused.itertuples()
                ),
                "auc_chosen_on": mean_auc(used, others),
                f"auc_{reference}_chosen_on": mean_auc(reference, others),
                "auc_held_out": float(auc.get((used, held_out), np.nan)),
                f"auc_{reference}_held_out": float(auc.get((reference, held_out), np.nan)),
            }
        )
    folds = pd.DataFrame(rows)
    if not folds.empty:
        folds["difference_held_out"] = folds["auc_held_out"] - folds[f"auc_{reference}_held_out"]
    return folds


def nested_markdown(
    folds: pd.DataFrame,
    candidates,
    observer: str = "cho",
    *,
    reference: str = "original",
    title: str = "A clip limit chosen on other patients",
) -> list[str]:
    """The nested choice as lines of the study's markdown: what it is, one row per fold, and the mean change."""
    if folds.empty:
        return []
    lines = [
        f"## {title} ({observer}, behind the heart)",
        "",
        f"Each held-out patient in turn: among {', '.join(candidates)}, the design study's rule chooses on the other "
        f"patients. The score is, per patient, the AUC behind the heart (grades pooled, mean of the fracture types; "
        f"templates trained on each patient's own images) over the {reference}'s, and over patients their geometric "
        f"mean; the best setting whose score exceeds 1 is chosen if it is at least as detectable as the {reference} "
        f"above the heart on each of them; otherwise the {reference} is kept. Its AUC on the held-out patient is what "
        "the choice delivers. Three folds say what happened, not whether it is significant.",
        "",
        f"| held out | chosen on | chosen | mean AUC where chosen ({reference}) | AUC held out ({reference}) | change |",
        "|---|---|---|---|---|---|",
    ]
    for row in folds.itertuples():
        lines.append(
            f"| {row.held_out} | {row.chosen_on} | {row.chosen} | {row.auc_chosen_on:.3f} "
            f"({getattr(row, f'auc_{reference}_chosen_on'):.3f}) | {row.auc_held_out:.3f} "
            f"({getattr(row, f'auc_{reference}_held_out'):.3f}) | {row.difference_held_out:+.3f} |"
        )
    refused = [f"{row.held_out}: {row.refused}" for row in folds.itertuples() if row.refused]
    lines += [
        "",
        f"Mean change on the held-out patients: {folds['difference_held_out'].mean():+.3f} AUC."
        + (f" Refused by the do-no-harm rule: {'; '.join(refused)}." if refused else ""),
        "",
    ]
    return lines
