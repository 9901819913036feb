"""Choosing a setting on the observer's AUC, nested by patient: which CLAHE clip limit would a study pick, and what does
that pick deliver on a patient it never saw?

A curve of CLAHE over clip limits shows every setting; quoting its best point would choose the setting on the very
patients it is reported on. The honest comparator is a nested choice, made the way a design study chooses:

* **Per patient, on that patient's images alone**, the observer's AUC of every method (:func:`patient_aucs`): for each
  fracture type, the template is trained on the patient's even noise realisations and tested on the odd ones, and the
  other way round (grades pooled, every view and level of the patient); its AUC is then read in each region and
  averaged over the types. No patient's number depends on another patient's images, so choosing on some patients and
  reporting on another keeps them apart, down to the observer's template.
* **Nested choice** (:func:`nested_choice`): each patient in turn is held out. Among the candidates, the one with the
  highest mean AUC behind the heart on the other patients is chosen, if on every one of them it is at least as
  detectable as the original above the heart (do no harm, the same rule for every candidate) and its mean behind the
  heart beats the original's; otherwise the original is kept (doing nothing does no harm). The chosen candidate's AUC
  on the held-out patient, against the original's there, is what the choice delivers.

With three held-out patients there are three folds: the per-fold numbers say what happened, not whether it is
significant (no test over three patients can reach p < 0.05).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xvertnet.evaluation.observer import auc, observer_scores

#: The regions a choice looks at: where it must help, and where it must not harm.
TARGET_REGION, GUARD_REGION = "behind_heart", "above_heart"


def patient_aucs(patches: dict, cases: pd.DataFrame, settings, *, observer: str = "cho") -> pd.DataFrame:
    """Per method, patient and region: the observer's AUC from templates trained on that patient's images only (grades
    pooled, averaged over the fracture types; module docstring). ``settings`` is the study's
    (:class:`xvertnet.evaluation.detectability.DetectabilitySettings`)."""
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
                p_scores, a_scores = observer_scores(
                    values[present], values[absent], folds[present], folds[absent], settings.observer
                )[observer]
                for region in (TARGET_REGION, GUARD_REGION):
                    keep_p = cases.loc[present, "region"].eq(region).to_numpy()
                    keep_a = cases.loc[absent, "region"].eq(region).to_numpy()
                    if keep_p.sum() < 2 or keep_a.sum() < 2:
                        continue
                    rows.append(
                        {
                            "method": name,
                            "patient": patient,
                            "kind": kind,
                            "region": region,
                            "auc": auc(p_scores[keep_p], a_scores[keep_a]),
                            "present": int(keep_p.sum()),
                            "absent": int(keep_a.sum()),
                        }
                    )
    columns = ["method", "patient", "region", "auc", "present", "absent"]
    if not rows:
        return pd.DataFrame(columns=columns)
    by_kind = pd.DataFrame(rows)
    return (
        by_kind.groupby(["method", "patient", "region"], sort=False)
        .agg(auc=("auc", "mean"), present=("present", "sum"), absent=("absent", "sum"))
        .reset_index()[columns]
    )


def nested_choice(aucs: pd.DataFrame, candidates, *, reference: str = "original") -> pd.DataFrame:
    """One row per held-out patient: the candidate chosen on the other patients (module docstring), its AUC behind the
    heart on the held-out patient and the reference's there. ``aucs`` is :func:`patient_aucs`'s table."""
    table = aucs.set_index(["method", "patient", "region"])["auc"]
    patients = sorted(aucs.loc[aucs["region"].eq(TARGET_REGION), "patient"].unique())
    candidates = [name for name in candidates if name != reference]

    def value(method, patient, region):
        return float(table.get((method, patient, region), np.nan))

    rows = []
    for held_out in patients:
        others = [patient for patient in patients if patient != held_out]
        baseline = np.mean([value(reference, p, TARGET_REGION) for p in others]) if others else np.nan
        ranked = []
        for name in candidates:
            score = np.mean([value(name, p, TARGET_REGION) for p in others]) if others else np.nan
            harmed = [
                p
                for p in others
                if np.isfinite(value(reference, p, GUARD_REGION))
                and not value(name, p, GUARD_REGION) >= value(reference, p, GUARD_REGION)
            ]
            eligible = bool(np.isfinite(score)) and not harmed and score > baseline
            ranked.append((score if np.isfinite(score) else -np.inf, name, eligible, harmed))
        ranked.sort(key=lambda item: -item[0])  # stable: ties keep the candidates' order
        chosen = next((name for _, name, eligible, _ in ranked if eligible), None)
        used = chosen or reference
        rows.append(
            {
                "held_out": held_out,
                "chosen_on": ", ".join(others),
                "chosen": chosen or f"none ({reference} kept)",
                "refused": ", ".join(f"{name} (above the heart on {', '.join(h)})" for _, name, _, h in ranked if h),
                "auc_chosen_on": float(next((s for s, n, _, _ in ranked if n == chosen), baseline)),
                f"auc_{reference}_chosen_on": float(baseline),
                "auc_held_out": value(used, held_out, TARGET_REGION),
                f"auc_{reference}_held_out": value(reference, held_out, TARGET_REGION),
            }
        )
    folds = pd.DataFrame(rows)
    if not folds.empty:
        folds["difference_held_out"] = folds["auc_held_out"] - folds[f"auc_{reference}_held_out"]
    return folds


def nested_markdown(
    folds: pd.DataFrame, candidates, observer: str = "cho", *, reference: str = "original"
) -> list[str]:
    """The nested choice as lines of the study's markdown: what it is, one row per fold, and the mean change."""
    if folds.empty:
        return []
    lines = [
        f"## A clip limit chosen on other patients ({observer}, behind the heart)",
        "",
        f"Each held-out patient in turn: among {', '.join(candidates)}, the setting with the highest AUC behind the "
        f"heart on the other patients (grades pooled, mean of the fracture types; templates trained on each patient's "
        f"own images) is chosen, if it is at least as detectable as the {reference} above the heart on each of them "
        f"and beats the {reference} behind it; otherwise the {reference} is kept. Its AUC on the held-out patient is "
        "what the choice delivers. Three folds say what happened, not whether it is significant.",
        "",
        f"| held out | chosen on | chosen | AUC where chosen ({reference}) | AUC held out ({reference}) | change |",
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
