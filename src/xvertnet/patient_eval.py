"""Leave-one-patient-out evaluation over the chest CT patients (issue 16, item 4): ``make evaluate``.

Every fold tests on one patient, selects (validation split: early stopping, the study's
selection) on the next one in the rotation and trains on the other two, so that no image of a
test patient is ever trained on or used to choose anything. A fold is an ordinary run of the
workflow (``run: lopo-<test patient>``, its own demo data set with the patients' splits), so
its models, tables and logs sit in ``results/runs/lopo-<patient>/`` and rerun like any other.

The report pools the folds' per-ROI rows (each names its patient) into one table per measure
and method: the mean +- std over patients (of the per-patient means), the mean +- std over
ROIs, a 95 % bootstrap confidence interval of the mean by patient (patients resampled with
replacement, ROIs kept together), and, for every method against the recommended XVertNet row,
the paired Wilcoxon signed-rank p-value over ROIs (as the comparison table).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .errors import InvalidValueError
from .settings import FromConfig
from .stats import LABELS, MEASURE_ORDER, METHOD_ORDER, wilcoxon_p


@dataclasses.dataclass(frozen=True)
class EvaluationSettings(FromConfig):
    """The leave-one-patient-out evaluation (config section ``evaluate``)."""

    SECTION: ClassVar[str] = "evaluate"

    patients: tuple[str, ...] = ("lidc0001", "tschest", "lung1", "lung2")
    views: tuple[str, ...] = ("ap", "rotl4", "rotr4")
    conditions: tuple[str, ...] = ("clean", "low_dose", "blur")
    bootstrap: int = 2000
    seed: int = 0
    reference_method: str = "xvertnet"


def folds(patients) -> list[dict[str, object]]:
    """For each patient as test: the next one (cyclically) for validation, the others for training."""
    patients = list(patients)
    if len(patients) < 3:
        raise InvalidValueError("leave-one-patient-out needs at least three patients (train, validation, test)")
    out = []
    for index, test in enumerate(patients):
        val = patients[(index + 1) % len(patients)]
        out.append({"name": f"lopo-{test}", "test": test, "val": val,
                    "train": [p for p in patients if p not in (test, val)]})
    return out


def fold_config(base: dict, fold: dict, settings: EvaluationSettings) -> dict:
    """The workflow config of one fold: ``base`` with its own run, data set and demo patients."""
    config = copy.deepcopy(base)
    config["run"] = fold["name"]
    config["datasets"] = [{"name": fold["name"], "manifest": "demo"}]
    demo = dict(config.get("demo", {}))
    views = [view for view in demo.get("views", []) if view["name"] in settings.views]
    demo.update(
        patients=[{"name": patient, "split": "train", "views": list(settings.views)} for patient in fold["train"]]
        + [{"name": fold["val"], "split": "val", "views": list(settings.views)},
           {"name": fold["test"], "split": "test", "views": list(settings.views)}],
        views=views, conditions=list(settings.conditions), include_real=False)
    config["demo"] = demo
    config.pop("study", None)
    return config


def with_patients(per_roi: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """``per_roi`` with the manifest's ``patient`` (and ``view``, ``condition``) of every row."""
    columns = [c for c in ("image_id", "patient", "view", "condition") if c in manifest.columns]
    joined = per_roi.drop(columns=[c for c in columns[1:] if c in per_roi.columns]).merge(
        manifest[columns], on="image_id", how="left")
    return joined


def bootstrap_interval(values_by_patient: dict[str, np.ndarray], repeats: int, rng: np.random.Generator) -> tuple[float, float]:
    """95 % interval of the pooled mean when patients are resampled with replacement (their ROIs kept together)."""
    patients = list(values_by_patient)
    if len(patients) < 2:
        return float("nan"), float("nan")
    means = np.empty(repeats)
    for repeat in range(repeats):
        chosen = rng.integers(0, len(patients), len(patients))
        means[repeat] = np.concatenate([values_by_patient[patients[i]] for i in chosen]).mean()
    low, high = np.percentile(means, (2.5, 97.5))
    return float(low), float(high)


def patient_table(rows: pd.DataFrame, settings: EvaluationSettings) -> pd.DataFrame:
    """One row per measure x method over the test ROIs of every fold (module docstring)."""
    rng = np.random.default_rng(settings.seed)
    test = rows[rows["split"] == "test"]
    methods = [m for m in METHOD_ORDER if m in set(test["method"])] + sorted(set(test["method"]) - set(METHOD_ORDER))
    out = []
    for measure in [m for m in MEASURE_ORDER if m in test.columns and test[m].notna().any()]:
        wide = test.pivot_table(index=["patient", "image_id", "roi"], columns="method", values=measure)
        for method in methods:
            part = test[(test["method"] == method)].dropna(subset=[measure])
            if part.empty:
                continue
            by_patient = {patient: group[measure].to_numpy() for patient, group in part.groupby("patient")}
            patient_means = np.array([values.mean() for values in by_patient.values()])
            low, high = bootstrap_interval(by_patient, settings.bootstrap, rng)
            p_value = float("nan")
            if method != settings.reference_method and {method, settings.reference_method} <= set(wide.columns):
                pair = wide[[settings.reference_method, method]].dropna()
                p_value = wilcoxon_p(pair[settings.reference_method], pair[method])
            out.append({"measure": measure, "method": method, "patients": len(by_patient), "rois": len(part),
                        "mean_over_patients": patient_means.mean(),
                        "std_over_patients": patient_means.std(ddof=1) if len(patient_means) > 1 else float("nan"),
                        "mean_over_rois": part[measure].mean(), "std_over_rois": part[measure].std(ddof=1),
                        "ci_low": low, "ci_high": high, "p_vs_reference": p_value,
                        "per_patient": json.dumps({patient: round(float(values.mean()), 4) for patient, values in by_patient.items()})})
    return pd.DataFrame(out)


def table_markdown(table: pd.DataFrame, settings: EvaluationSettings) -> str:
    """The table as Markdown: one block per measure, methods as rows."""
    lines = [f"Leave-one-patient-out over {', '.join(settings.patients)} (test ROIs of every fold; "
             f"95 % bootstrap CI by patient, {settings.bootstrap} resamples; p: paired Wilcoxon vs {settings.reference_method})", ""]
    for measure, part in table.groupby("measure", sort=False):
        lines += [f"**{LABELS.get(measure, measure)}**", "",
                  "| method | mean ± std over patients | mean ± std over ROIs | 95 % CI | p | per patient |",
                  "|---|---|---|---|---|---|"]
        for row in part.itertuples():
            per_patient = ", ".join(f"{k} {v:.3g}" for k, v in json.loads(row.per_patient).items())
            p_text = "" if np.isnan(row.p_vs_reference) else f"{row.p_vs_reference:.2g}"
            lines.append(f"| {row.method} | {row.mean_over_patients:.3g} ± {row.std_over_patients:.2g} | "
                         f"{row.mean_over_rois:.3g} ± {row.std_over_rois:.2g} | {row.ci_low:.3g} – {row.ci_high:.3g} | "
                         f"{p_text} | {per_patient} |")
        lines.append("")
    return "\n".join(lines)


def write_report(fold_results: list[tuple[Path, Path]], out_dir, settings: EvaluationSettings) -> pd.DataFrame:
    """Pool the folds' (per_roi.csv, manifest.csv) into ``per_roi.csv``, ``patients.csv`` and ``patients.md``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for per_roi_path, manifest_path in fold_results:
        per_roi = pd.read_csv(per_roi_path)
        frames.append(with_patients(per_roi, pd.read_csv(manifest_path, keep_default_na=False)))
    rows = pd.concat(frames, ignore_index=True)
    table = patient_table(rows, settings)
    with atomic_path(out_dir / "per_roi.csv") as tmp:
        rows.to_csv(tmp, index=False)
    with atomic_path(out_dir / "patients.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "patients.md") as tmp:
        Path(tmp).write_text(table_markdown(table, settings))
    return table

