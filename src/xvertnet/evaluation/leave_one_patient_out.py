"""Leave-one-patient-out evaluation over the chest CT patients: ``make evaluate``.

Every fold tests on one patient, selects (validation split: early stopping, the study's
selection) on the next one in the rotation and trains on the other two, so that no image of a
test patient is ever trained on or used to choose anything. A fold is an ordinary run of the
workflow (``run: lopo-<test patient>-s<seed>``, one per training seed of ``training_seeds``,
sharing the fold's demo data set ``lopo-<test patient>``), so its models, tables and logs sit
in ``results/runs/lopo-<patient>-s<seed>/`` and rerun like any other; every run trains
``segmenter_seeds`` segmenters.

The report pools the folds' per-ROI rows (each names its patient and training seed) into one
table per measure and method: the mean +- std over patients (of the per-patient means, each the
mean over ROIs and seeds), the standard deviation over training seeds of the mean over
patients (how far a learned row moves with its seed), the mean +- std over
ROIs, a 95 % bootstrap confidence interval of the mean over patients (patients resampled with
replacement; with four patients there are only 35 distinct resamples, so read it as a
spread, not an exact interval), and, for every method against the reference XVertNet row, two
paired tests: Wilcoxon signed-rank over ROIs (as the comparison table; ROIs of one patient are
not independent, so it overstates the evidence) and an exact sign-flip permutation test over
the per-patient mean differences (the honest one; with n patients its smallest two-sided
p-value is 2 / 2**n, 0.125 for four).

One exception to "nothing of a test patient chooses anything": the recommended configuration
of the ``xvertnet`` row (anchored head, T = 1) was chosen by the design study on lidc0001's
DRRs, and the spine locator was tuned on lidc0001 and the real radiographs; the fold that
tests on lidc0001 inherits both.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from xvertnet.errors import InputFileError, InvalidValueError
from xvertnet.evaluation.stats import LABELS, MEASURE_ORDER, METHOD_ORDER, wilcoxon_p
from xvertnet.io.atomic import atomic_path
from xvertnet.settings import FromConfig


@dataclasses.dataclass(frozen=True)
class EvaluationSettings(FromConfig):
    """The leave-one-patient-out evaluation (config section ``evaluate``)."""

    SECTION: ClassVar[str] = "evaluate"

    patients: tuple[str, ...] = ("lidc0001", "tschest", "lung1", "lung2")
    views: tuple[str, ...] = ("ap", "rotl4", "rotr4")
    conditions: tuple[str, ...] = ("standard", "low_dose", "blur")
    bootstrap: int = 2000
    seed: int = 0
    reference_method: str = "xvertnet"
    #: Training seeds: every fold is run once per seed (XVertNet's and every learned baseline's seed).
    training_seeds: tuple[int, ...] = (0, 1, 2)
    #: Segmenters per run (the segmentation task's seeds 0 ... n - 1; each ROI's value is their mean).
    segmenter_seeds: int = 5


def folds(patients, training_seeds=(0,)) -> list[dict[str, object]]:
    """For each patient as test and each training seed: the next patient (cyclically) for validation, the others
    for training. A fold's data set (``dataset``) is shared by its seeds; its run (``name``) is its own."""
    patients = list(patients)
    if len(patients) < 3:
        raise InvalidValueError("leave-one-patient-out needs at least three patients (train, validation, test)")
    if not training_seeds:
        raise InvalidValueError("evaluate.training_seeds is empty: give at least one seed")
    out = []
    for index, test in enumerate(patients):
        val = patients[(index + 1) % len(patients)]
        for seed in training_seeds:
            name = f"lopo-{test}" if len(training_seeds) == 1 else f"lopo-{test}-s{seed}"
            out.append(
                {
                    "name": name,
                    "dataset": f"lopo-{test}",
                    "seed": int(seed),
                    "test": test,
                    "val": val,
                    "train": [p for p in patients if p not in (test, val)],
                }
            )
    return out


def fold_config(base: dict, fold: dict, settings: EvaluationSettings) -> dict:
    """The workflow config of one fold: ``base`` with its own run, data set and demo patients."""
    config = copy.deepcopy(base)
    config["run"] = fold["name"]
    config["datasets"] = [{"name": fold.get("dataset", fold["name"]), "manifest": "demo"}]
    seed = int(fold.get("seed", 0))
    config["train"] = {**config.get("train", {}), "seed": seed}
    for name, section in (config.get("baselines") or {}).items():
        if isinstance(section, dict) and "seed" in section:  # every learned baseline's own seed
            config["baselines"][name] = {**section, "seed": seed}
    config["segmentation_task"] = {
        **config.get("segmentation_task", {}),
        "seeds": list(range(settings.segmenter_seeds)),
    }
    demo = dict(config.get("demo", {}))
    views = [view for view in demo.get("views", []) if view["name"] in settings.views]
    demo.update(
        patients=[{"name": patient, "split": "train", "views": list(settings.views)} for patient in fold["train"]]
        + [
            {"name": fold["val"], "split": "val", "views": list(settings.views)},
            {"name": fold["test"], "split": "test", "views": list(settings.views)},
        ],
        views=views,
        conditions=list(settings.conditions),
        include_real=False,
    )
    config["demo"] = demo
    config.pop("study", None)
    return config


def with_patients(per_roi: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """``per_roi`` with the manifest's ``patient`` (and ``view``, ``condition``) of every row."""
    columns = [c for c in ("image_id", "patient", "view", "condition") if c in manifest.columns]
    joined = per_roi.drop(columns=[c for c in columns[1:] if c in per_roi.columns]).merge(
        manifest[columns], on="image_id", how="left"
    )
    return joined


def bootstrap_interval(patient_means: np.ndarray, repeats: int, rng: np.random.Generator) -> tuple[float, float]:
    """95 % percentile interval of the mean over patients when patients are resampled with replacement."""
    patient_means = np.asarray(patient_means, dtype=np.float64)
    if len(patient_means) < 2:
        return float("nan"), float("nan")
    chosen = rng.integers(0, len(patient_means), (repeats, len(patient_means)))
    low, high = np.percentile(patient_means[chosen].mean(axis=1), (2.5, 97.5))
    return float(low), float(high)


def sign_flip_p(differences: np.ndarray) -> float:
    """Exact two-sided p-value of a paired sign-flip permutation test on per-patient mean differences."""
    differences = np.asarray(differences, dtype=np.float64)
    n = len(differences)
    if n < 2 or np.allclose(differences, 0):
        return float("nan")
    signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * n)).reshape(n, -1).T
    observed = abs(differences.mean())
    return float(np.mean(np.abs((signs * differences).mean(axis=1)) >= observed - 1e-12))


def patient_table(rows: pd.DataFrame, settings: EvaluationSettings) -> pd.DataFrame:
    """One row per measure x method over the test ROIs of every fold (module docstring)."""
    test = rows[rows["split"] == "test"]
    methods = [m for m in METHOD_ORDER if m in set(test["method"])] + sorted(set(test["method"]) - set(METHOD_ORDER))
    measures = [m for m in MEASURE_ORDER if m in test.columns and test[m].notna().any()]
    out = []
    for measure_index, measure in enumerate(measures):
        wide = test.pivot_table(index=["patient", "image_id", "roi"], columns="method", values=measure)
        means = test.pivot_table(index="patient", columns="method", values=measure)  # per-patient means
        for method_index, method in enumerate(methods):
            part = test[(test["method"] == method)].dropna(subset=[measure])
            if part.empty:
                continue
            patient_means = part.groupby("patient")[measure].mean()  # over ROIs and training seeds
            seed_std = float("nan")
            if "seed" in part.columns and part["seed"].nunique() > 1:  # the spread between training seeds
                per_seed = part.groupby(["seed", "patient"])[measure].mean().groupby(level="seed").mean()
                seed_std = float(per_seed.std(ddof=1))
            rng = np.random.default_rng([settings.seed, measure_index, method_index])
            low, high = bootstrap_interval(patient_means.to_numpy(), settings.bootstrap, rng)
            p_rois = p_patients = float("nan")
            reference = settings.reference_method
            if method != reference and {method, reference} <= set(wide.columns):
                pair = wide[[reference, method]].dropna()
                p_rois = wilcoxon_p(pair[reference], pair[method])
                paired = means[[reference, method]].dropna()
                p_patients = sign_flip_p((paired[reference] - paired[method]).to_numpy())
            out.append(
                {
                    "measure": measure,
                    "method": method,
                    "patients": len(patient_means),
                    "rois": len(part),
                    "mean_over_patients": patient_means.mean(),
                    "std_over_patients": patient_means.std(ddof=1) if len(patient_means) > 1 else float("nan"),
                    "mean_over_rois": part[measure].mean(),
                    "std_over_rois": part[measure].std(ddof=1),
                    "seeds": int(part["seed"].nunique()) if "seed" in part.columns else 1,
                    "std_over_seeds": seed_std,
                    "ci_low": low,
                    "ci_high": high,
                    "p_rois_wilcoxon": p_rois,
                    "p_patients_sign_flip": p_patients,
                    "per_patient": json.dumps(
                        {patient: round(float(value), 4) for patient, value in patient_means.items()}
                    ),
                }
            )
    return pd.DataFrame(out)


def table_markdown(table: pd.DataFrame, settings: EvaluationSettings) -> str:
    """The table as Markdown: one block per measure, methods as rows."""
    lines = [
        f"Leave-one-patient-out over {', '.join(settings.patients)} (test ROIs of every fold). 95 % CI: bootstrap "
        f"over patients ({settings.bootstrap} resamples). p vs {settings.reference_method}: Wilcoxon over ROIs (ROIs of "
        "one patient are not independent: it overstates the evidence) and an exact sign-flip test over per-patient "
        f"means (smallest possible p with {len(settings.patients)} patients: {2 / 2 ** len(settings.patients):.3g}). "
        f"Training seeds {', '.join(map(str, settings.training_seeds))}: every value is the mean over them; 'seed std' is "
        f"the standard deviation over seeds of the mean over patients (the learned rows' reproducibility). "
        f"{settings.segmenter_seeds} segmenters per run.",
        "",
    ]

    def p_text(value):
        return "" if np.isnan(value) else f"{value:.2g}"

    for measure, part in table.groupby("measure", sort=False):
        lines += [
            f"**{LABELS.get(measure, measure)}**",
            "",
            "| method | mean ± std over patients | seed std | mean ± std over ROIs | 95 % CI | p ROIs | p patients | per patient |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in part.itertuples():
            per_patient = ", ".join(f"{k} {v:.3g}" for k, v in json.loads(row.per_patient).items())
            seed_std = getattr(row, "std_over_seeds", float("nan"))
            lines.append(
                f"| {row.method} | {row.mean_over_patients:.3g} ± {row.std_over_patients:.2g} | "
                f"{'' if np.isnan(seed_std) else f'{seed_std:.2g}'} | {row.mean_over_rois:.3g} ± {row.std_over_rois:.2g} | {row.ci_low:.3g} – {row.ci_high:.3g} | "
                f"{p_text(row.p_rois_wilcoxon)} | {p_text(row.p_patients_sign_flip)} | {per_patient} |"
            )
        lines.append("")
    return "\n".join(lines)


def _read_csv(path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=False) if what == "manifest" else pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputFileError(str(path), f"{what} unreadable ({type(error).__name__}: {error})") from None


def write_report(fold_results: list[tuple], out_dir, settings: EvaluationSettings) -> pd.DataFrame:
    """Pool the folds' (per_roi.csv, manifest.csv[, training seed]) into ``per_roi.csv``, ``patients.csv`` and
    ``patients.md``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for per_roi_path, manifest_path, *seed in fold_results:
        per_roi = _read_csv(per_roi_path, "per-ROI table")
        manifest = _read_csv(manifest_path, "manifest")
        for path, frame, needed in (
            (per_roi_path, per_roi, ("image_id", "split", "method")),
            (manifest_path, manifest, ("image_id", "patient")),
        ):
            missing = [column for column in needed if column not in frame.columns]
            if missing:
                raise InputFileError(str(path), f"has no '{missing[0]}' column (is it a demo data set's file?)")
        frames.append(with_patients(per_roi, manifest).assign(seed=int(seed[0]) if seed else 0))
    rows = pd.concat(frames, ignore_index=True)
    table = patient_table(rows, settings)
    with atomic_path(out_dir / "per_roi.csv") as tmp:
        rows.to_csv(tmp, index=False)
    with atomic_path(out_dir / "patients.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "patients.md") as tmp:
        Path(tmp).write_text(table_markdown(table, settings))
    return table
