"""Leave-one-patient-out evaluation over the chest CT patients: ``make evaluate``.

Every fold tests on one patient, selects (validation split: early stopping, the study's
selection) on the next one in the rotation and trains on the other two, so that no image of a
test patient is ever trained on or used to choose anything. A fold is an ordinary run of the
workflow (``run: lopo-<test patient>-s<seed>``, one per training seed of ``training_seeds``,
sharing the fold's demo data set ``lopo-<test patient>``), so its models, tables and logs sit
in ``results/runs/lopo-<patient>-s<seed>/`` and rerun like any other. Every run trains
``segmenters_per_run`` segmenters per method, each run its own seeds (with 3 training seeds and 2
per run: segmenter seeds 0-1, 2-3 and 4-5), so a fold scores every method with
``segmenters_per_run`` x (training seeds) = 6 segmenters: the segmenter's own variation is averaged
as if each run trained six, at two fifths of the cost of five per run. A learned method's Dice then varies between its
runs with both seeds; a deterministic method's (original, CLAHE) with the segmenter's alone,
which shows that floor beside every learned row.

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

Beside it, every method against the original patient by patient (``relative.csv``): per measure, the
ratio of the method's mean over the patient's ROIs to the original's, summarised over patients as a
geometric mean (exp of the mean log-ratio) with a bootstrap interval over patients; and the
do-no-harm rule applied alike to every method, CLAHE and the other baselines included
(``do_no_harm.csv``): on no patient may the mean displayed contrast, displayed CNR or segmentation
Dice fall below the original's by more than ``harm_tolerance``. The tolerance is fixed before the
run (5 %). It has to exceed what a learned row moves with its training seed, or the rule judges
seeds rather than methods; the report prints that spread, measured on the run's own seeds, beside it,
so a next run can set the tolerance from it (never the same run: that would tune the rule on the
data it judges).

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
from xvertnet.evaluation.stats import LABELS, MEASURE_ORDER, ordered_methods, wilcoxon_p
from xvertnet.evaluation.study_selection import harmed_measures
from xvertnet.io.atomic import atomic_path
from xvertnet.metrics import BETTER
from xvertnet.settings import FromConfig

#: Measures where higher is better and a ratio to the original means something: the paper's and task measures of
#: BETTER with sign +1, and the raw vertebral CNR and edge measures (whose per-ROI ratios are cnr_ratio, edge_ratio).
RELATIVE = frozenset({name for name, sign in BETTER.items() if sign > 0} | {"cnr", "edge"})


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
    #: Segmenters per run and method; each run of a fold has its own seeds (module docstring), each ROI's value is
    #: the mean over the fold's segmenters.
    segmenters_per_run: int = 2
    #: Measures summarised per patient as log-ratios to the original (higher is better for each).
    relative_measures: tuple[str, ...] = ("displayed_contrast", "displayed_cnr", "seg_dice", "cnr", "edge")
    #: The do-no-harm rule, applied alike to every method: on no patient may the mean of one of these fall
    #: below the original's by more than ``harm_tolerance`` of it (the design study's rule and measures).
    do_no_harm: tuple[str, ...] = ("displayed_contrast", "displayed_cnr", "seg_dice")
    #: Fixed before the run (module docstring): 5 %.
    harm_tolerance: float = 0.05
    #: ``make detectability``'s detectability.csv, whose fracture AUCs join the report ("" for none).
    detectability_table: str = ""

    def __post_init__(self):
        unknown = [m for m in (*self.relative_measures, *self.do_no_harm) if m not in RELATIVE]
        if unknown:
            raise InvalidValueError(
                f"evaluate: {unknown} cannot be compared as a ratio to the original (one of {sorted(RELATIVE)})"
            )
        if not 0 <= self.harm_tolerance < 1:
            raise InvalidValueError(f"evaluate.harm_tolerance: {self.harm_tolerance} is not in [0, 1)")


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


def segmenter_seeds(settings: EvaluationSettings, training_seed: int) -> list[int]:
    """The segmentation task's seeds in the run of ``training_seed``: the run's own block of ``segmenters_per_run``."""
    index = list(settings.training_seeds).index(training_seed) if training_seed in settings.training_seeds else 0
    return list(range(index * settings.segmenters_per_run, (index + 1) * settings.segmenters_per_run))


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
        "seeds": segmenter_seeds(settings, seed),
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
    methods = ordered_methods(test["method"])
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


def patient_log_ratios(test: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per patient (rows) and method (columns): log of the method's mean over the patient's ROIs (and training
    seeds) over the original's. -inf where the method's mean is not positive and the original's is (all lost);
    NaN where the original's mean is not positive (no ratio is defined)."""
    means = test.pivot_table(index="patient", columns="method", values=measure)
    if "original" not in means.columns:
        raise InvalidValueError(f"evaluate: no original rows for {measure}: nothing to compare against")
    original = means["original"].where(means["original"] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = means.div(original, axis=0)
        logs = np.log(ratios.clip(lower=0.0))
    return logs.where(original.notna(), np.nan, axis=0)


def relative_table(rows: pd.DataFrame, settings: EvaluationSettings) -> pd.DataFrame:
    """Every method against the original, by patient: per measure of ``relative_measures``, the geometric mean
    over patients of the per-patient ratio of means (exp of the mean log-ratio), its 95 % bootstrap interval
    (patients resampled), and the patients above and below 1 (the do-no-harm rule: :func:`do_no_harm_table`)."""
    test = rows[rows["split"] == "test"]
    methods = ordered_methods(test["method"])
    out = []
    for measure_index, measure in enumerate(settings.relative_measures):
        if measure not in test.columns or not test[measure].notna().any():
            continue
        logs = patient_log_ratios(test, measure)
        for method_index, method in enumerate(methods):
            if method not in logs.columns:
                continue
            values = logs[method].dropna()
            if values.empty:
                continue
            rng = np.random.default_rng([settings.seed, 1000 + measure_index, method_index])
            if np.isfinite(values).all():
                low, high = bootstrap_interval(values.to_numpy(), settings.bootstrap, rng)
            else:  # a patient whose mean went to or below zero: the geometric mean is 0
                low = high = float("-inf")
            out.append(
                {
                    "measure": measure,
                    "method": method,
                    "patients": len(values),
                    "ratio": float(np.exp(values.mean())),
                    "ci_low": float(np.exp(low)),
                    "ci_high": float(np.exp(high)),
                    "above": int((values > 1e-12).sum()),
                    "below": int((values < -1e-12).sum()),
                    "per_patient": json.dumps({p: round(float(np.exp(v)), 4) for p, v in values.items()}),
                }
            )
    return pd.DataFrame(out)


def do_no_harm_table(rows: pd.DataFrame, settings: EvaluationSettings) -> pd.DataFrame:
    """The do-no-harm rule of ``settings`` on every method alike: per method, the (measure, patient) pairs where
    its mean falls below the original's by more than ``harm_tolerance`` (or is not measured); it passes when
    there are none. A measure no fold measured at all (e.g. the segmentation task switched off) is left out of
    the rule, and the table's ``unmeasured`` column names it."""
    test = rows[rows["split"] == "test"]
    measures = [m for m in settings.do_no_harm if m in test.columns and test[m].notna().any()]
    unmeasured = ", ".join(m for m in settings.do_no_harm if m not in measures)
    means = test.groupby(["method", "patient"])[measures].mean()
    methods = ordered_methods(test["method"])
    out = []
    for method in methods:
        harmed = []
        for patient in sorted(set(test["patient"])):
            if ("original", patient) not in means.index:
                continue
            if (method, patient) not in means.index:
                harmed += [f"{measure} ({patient}, not measured)" for measure in measures]
                continue
            found = harmed_measures(
                means.loc[(method, patient)], means.loc[("original", patient)], measures, settings.harm_tolerance
            )
            harmed += [f"{measure} ({patient})" for measure in found]
        out.append({"method": method, "passes": not harmed, "harmed": "; ".join(harmed), "unmeasured": unmeasured})
    return pd.DataFrame(out)


def seed_spread(table: pd.DataFrame, measures) -> float:
    """The median, over learned rows of ``measures``, of the spread between training seeds relative to the mean
    (``std_over_seeds`` / ``mean_over_patients`` of :func:`patient_table`): what the harm tolerance must exceed
    for the rule to judge methods rather than seeds. NaN with one seed."""
    part = table[table["measure"].isin(list(measures))]
    if "std_over_seeds" not in part.columns:
        return float("nan")
    relative = (part["std_over_seeds"] / part["mean_over_patients"].abs()).replace([np.inf, -np.inf], np.nan)
    return float(relative.dropna().median()) if relative.notna().any() else float("nan")


def relative_markdown(
    relative: pd.DataFrame, harm: pd.DataFrame, spread: float, settings: EvaluationSettings, heading: str = "##"
) -> str:
    """The per-patient ratios and the do-no-harm rule as Markdown, its sections at ``heading`` level."""
    tolerance = f"{100 * settings.harm_tolerance:.3g} %"
    spread_text = "not measured (one training seed)" if np.isnan(spread) else f"{100 * spread:.2g} %"
    lines = [
        f"{heading} Against the original, patient by patient",
        "",
        "Per patient, the ratio of the method's mean over its ROIs (and training seeds) to the original's; over "
        "patients, their geometric mean (exp of the mean log-ratio) with a 95 % bootstrap interval over patients. "
        "0 means a patient whose mean went to zero or below.",
        "",
        "| measure | method | ratio to original | 95 % CI | patients above / below 1 | per patient |",
        "|---|---|---|---|---|---|",
    ]
    for row in relative.itertuples():
        per_patient = ", ".join(f"{k} {v:.3g}" for k, v in json.loads(row.per_patient).items())
        lines.append(
            f"| {LABELS.get(row.measure, row.measure)} | {row.method} | {row.ratio:.3g} | "
            f"{row.ci_low:.3g} – {row.ci_high:.3g} | {row.above} / {row.below} | {per_patient} |"
        )
    lines += [
        "",
        f"{heading} Do no harm, every method alike",
        "",
        f"A method passes when on no patient its mean {', '.join(LABELS.get(m, m) for m in settings.do_no_harm)} "
        f"falls below the original's by more than {tolerance} (evaluate.harm_tolerance, fixed before the run). "
        f"Measured spread between training seeds (median over learned rows of these measures, relative to the "
        f"mean): {spread_text}.",
        "",
        "| method | passes | harmed (measure, patient) |",
        "|---|---|---|",
    ]
    unmeasured = harm["unmeasured"].iloc[0] if len(harm) else ""
    if unmeasured:
        lines[-3:-3] = [f"Not measured in these runs, so left out of the rule: {unmeasured}.", ""]
    lines += [f"| {row.method} | {'yes' if row.passes else 'no'} | {row.harmed} |" for row in harm.itertuples()]
    return "\n".join(lines) + "\n"


def detectability_section(rows: pd.DataFrame, settings: EvaluationSettings, heading: str = "##") -> str:
    """The fracture AUCs of ``settings.detectability_table`` for the methods of the folds, as a Markdown section
    ("" without one). The study tests on its own held-out patients with the shipped XVertNet model and the demo run's
    learned baselines, not the folds' models: the section says so."""
    if not settings.detectability_table:
        return ""
    from xvertnet.evaluation.detectability_join import block_markdown, detectability_block, read_detectability

    methods = ordered_methods(rows["method"])
    block = detectability_block(read_detectability(settings.detectability_table), methods)
    return (
        f"\n{heading} Fracture detectability\n\n"
        "From the detectability study, which tests on its own held-out patients with the model set shipped in the "
        "package and, where it has them, the demo run's learned baselines (not the folds' models), so it sits beside "
        "the rotation rather than inside it.\n\n" + block_markdown(block, methods, settings.detectability_table)
    )


def summary_markdown(table: pd.DataFrame, settings: EvaluationSettings, header: str = "") -> str:
    """The table of :func:`patient_table` in one screen: measures as rows, methods as columns, each cell the mean
    ± std over patients and, for rows with several training seeds, the standard deviation over seeds in brackets;
    the best mean per measure in bold; † where every patient differs from the reference method in the same
    direction (the sign-flip test at its smallest p). ``header`` (e.g. :func:`xvertnet.provenance.made_by`) first."""
    from xvertnet.metrics import BETTER

    methods = ordered_methods(table["method"])
    patients = int(table["patients"].max())
    smallest = 2 / 2**patients
    lines = [header, ""] if header else []
    lines += [
        "| measure | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for measure, part in table.groupby("measure", sort=False):
        part = part.set_index("method")
        sign = BETTER.get(measure, 0)
        best = (part["mean_over_patients"] * sign).idxmax() if sign else None
        cells = []
        for method in methods:
            if method not in part.index:
                cells.append("–")
                continue
            row = part.loc[method]
            text = f"{row.mean_over_patients:.3g} ± {row.std_over_patients:.2g}"
            if not np.isnan(row.get("std_over_seeds", float("nan"))) and row.get("std_over_seeds", 0) > 0:
                text += f" ({row.std_over_seeds:.2g})"
            if method == best:
                text = f"**{text}**"
            if row.p_patients_sign_flip <= 2 / 2 ** int(row.patients) + 1e-12:
                text += " †"
            cells.append(text)
        arrow = {1: " ↑", -1: " ↓"}.get(sign, "")
        lines.append(f"| {LABELS.get(measure, measure)}{arrow} | " + " | ".join(cells) + " |")
    seeds = ", ".join(map(str, settings.training_seeds))
    lines += [
        "",
        f"Test ROIs of every fold of the rotation over {patients} patients; mean ± std over the patients' "
        f"means (each the mean over the patient's ROIs and the training seeds {seeds}); in brackets the standard "
        f"deviation over training seeds of the mean over patients (deterministic methods have none, except for "
        f"the segmentation measures, whose segmenters differ between runs); **best**; † = every patient differs "
        f"from {settings.reference_method} in the same direction (exact sign-flip p = {smallest:.3g}, the smallest "
        f"{patients} patients can give). Per-ROI spreads, bootstrap intervals and both tests: "
        "patients.md beside this file.",
    ]
    return "\n".join(lines) + "\n"


def table_markdown(table: pd.DataFrame, settings: EvaluationSettings) -> str:
    """The table as Markdown: one block per measure, methods as rows."""
    lines = [
        f"Leave-one-patient-out over {', '.join(settings.patients)} (test ROIs of every fold). 95 % CI: bootstrap "
        f"over patients ({settings.bootstrap} resamples). p vs {settings.reference_method}: Wilcoxon over ROIs (ROIs of "
        "one patient are not independent: it overstates the evidence) and an exact sign-flip test over per-patient "
        f"means (smallest possible p with {len(settings.patients)} patients: {2 / 2 ** len(settings.patients):.3g}). "
        f"Training seeds {', '.join(map(str, settings.training_seeds))}: every value is the mean over them; 'seed std' is "
        f"the standard deviation over seeds of the mean over patients (the learned rows' reproducibility). "
        f"{settings.segmenters_per_run} segmenters per run and method, each run its own seeds "
        f"({settings.segmenters_per_run * len(settings.training_seeds)} per method and fold).",
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
    """Pool the folds' (per_roi.csv, manifest.csv[, training seed]) into ``per_roi.csv``, ``patients.csv``,
    ``relative.csv`` (every method against the original, by patient), ``do_no_harm.csv`` and ``patients.md``."""
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
    relative, harm = relative_table(rows, settings), do_no_harm_table(rows, settings)
    spread = seed_spread(table, settings.do_no_harm)
    with atomic_path(out_dir / "relative.csv") as tmp:
        relative.to_csv(tmp, index=False)
    with atomic_path(out_dir / "do_no_harm.csv") as tmp:
        harm.to_csv(tmp, index=False)
    with atomic_path(out_dir / "per_roi.csv") as tmp:
        rows.to_csv(tmp, index=False)
    with atomic_path(out_dir / "patients.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "patients.md") as tmp:
        Path(tmp).write_text(
            table_markdown(table, settings)
            + "\n"
            + relative_markdown(relative, harm, spread, settings)
            + detectability_section(rows, settings)
        )
    from xvertnet.provenance import made_by

    with atomic_path(out_dir / "summary.md") as tmp:  # the docs' copy (xvertnet docs-tables)
        Path(tmp).write_text(
            summary_markdown(table, settings, made_by("make evaluate"))
            + "\n"
            + relative_markdown(relative, harm, spread, settings, heading="####")
            + detectability_section(rows, settings, heading="####")
        )
    return table
