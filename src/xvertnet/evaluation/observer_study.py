"""The design study judged by a reader's task: which trained configuration makes a vertebral fracture behind the heart
easier to find, on patients it has never seen?

Every study entry (a variant of the XVertNet configuration, trained once per seed on the study run's training patient)
and CLAHE at each clip limit enhance the same whole images the fracture-detectability study makes
(:mod:`xvertnet.evaluation.detectability`: held-out CT patients, several views, simulated wedge and biconcave fractures
of grades 1 and 2 at every level in view, independent exposures through the demo's detector and for-presentation
step). The human-like model observers read the displayed images at each lesion's place. Then:

* **Per patient**, each method's AUC behind and above the heart from templates trained on that patient's images only
  (:func:`xvertnet.evaluation.observer_selection.patient_aucs`). A variant's AUC on a patient is the mean over its
  training seeds; the spread over seeds (standard deviation) is kept beside it.
* **The choice, nested by patient** (:func:`xvertnet.evaluation.observer_selection.nested_choice`, the design study's
  rule): each patient in turn is held out; among the variants and CLAHE's clip limits alike, the candidate with the
  best score on the other patients is chosen (per patient, its AUC behind the heart over the original's; over
  patients, the geometric mean, which must exceed 1), if on each of them it is at least as detectable above the heart
  as the original (less a relative ``harm_tolerance`` fixed before the run); otherwise the original is kept. What the
  chosen candidate gives on the held-out patient is the honest estimate of the choice. CLAHE's clip limit is chosen
  the same way on its own, so the network is compared with CLAHE at a clip limit chosen as fairly as its own settings.
* **The recommendation** is chosen the same way on all patients; its numbers there flatter it.
* **Is it better, and significantly?** For each seed of the recommended variant (or, when nothing is recommended, of
  the best-scoring variant): AUC per lesion type and grade behind the heart and above it, against the original and
  against CLAHE at the clip limit chosen on all patients, with p from the detectability study's paired bootstrap over
  patients and, within them, cases.
* **Hallucination check**: a method that draws fracture-like structure where there is none raises the observer's
  false positives. On the signal-absent patches, each method is read at the sensitivity the original reaches at
  ``false_positive_fraction`` (the original's operating point); its false-positive fraction there is compared with the
  original's. Reading each method at the original's sensitivity, rather than at a fixed threshold, keeps a method's
  plain change of scale out of the check: only what costs specificity at equal sensitivity counts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from xvertnet.errors import InvalidValueError
from xvertnet.evaluation.observer_selection import GUARD_REGION, TARGET_REGION
from xvertnet.io.atomic import atomic_path
from xvertnet.settings import FromConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ObserverStudySettings(FromConfig):
    """The design study's fracture-observer part (config ``study.observer``; module docstring)."""

    SECTION: ClassVar[str] = "study.observer"

    patients: tuple[str, ...] = ("tschest", "lung1", "lung2")
    views: tuple[str, ...] = ("ap", "rotl4", "tiltu3")
    realisations: int = 2
    clip_limits: tuple[float, ...] = (0.005, 0.01, 0.02, 0.03)
    observer: str = "cho"
    harm_tolerance: float = 0.0
    false_positive_fraction: float = 0.1

    def __post_init__(self):
        if len(self.patients) < 2:
            raise InvalidValueError(f"study.observer.patients: nested choice needs two or more, got {self.patients}")
        if self.observer not in ("cho", "npwe"):
            raise InvalidValueError(f"study.observer.observer must be cho or npwe, got {self.observer!r}")
        if not 0 <= self.harm_tolerance < 1:
            raise InvalidValueError(f"study.observer.harm_tolerance must be in [0, 1), got {self.harm_tolerance}")
        if not 0 < self.false_positive_fraction < 1:
            raise InvalidValueError(
                f"study.observer.false_positive_fraction must be in (0, 1), got {self.false_positive_fraction}"
            )

    def clahe_names(self) -> list[str]:
        return [f"clahe-{limit:g}" for limit in self.clip_limits]

    def detectability(self, methods=("original",)):
        """The detectability study's settings for these patients, views and realisations."""
        from xvertnet.evaluation.detectability import DetectabilitySettings

        return DetectabilitySettings(
            patients=tuple(self.patients),
            views=tuple(self.views),
            realisations=self.realisations,
            methods=tuple(methods),
        )


def check_training_patients(manifests: dict[str, pd.DataFrame], patients) -> list[str]:
    """The patients the study run trains and stops early on (its manifests' ``train`` and ``val`` rows); an error naming
    the first held-out patient among them, so that no patient the observer study reports on trained anything."""
    seen = set()
    for dataset, manifest in manifests.items():
        if "patient" not in manifest.columns:
            raise InvalidValueError(
                f"study observer: data set {dataset}'s manifest has no `patient` column: cannot rule out a held-out "
                "patient among the training images"
            )
        used = manifest[manifest["split"].isin(["train", "val"])]
        seen |= {str(p) for p in used["patient"] if str(p)}
    clash = sorted({p.lower() for p in seen} & {p.lower() for p in patients})
    if clash:
        raise InvalidValueError(f"study observer: {clash[0]} is a held-out patient and trains or stops a study model")
    return sorted(seen)


def entry_enhancer(spec: dict):
    """``image -> enhanced`` of one study entry: its registered method (the trained chain), composed with its
    ``before``/``then`` steps, as the workflow's enhance stage builds it."""
    from xvertnet.methods import get_method
    from xvertnet.methods.composite import compose, split_steps

    settings, steps = split_steps(spec["settings"])
    return compose(get_method(spec["method"], settings), steps).enhance_whole


def variant_aucs(aucs: pd.DataFrame, entries: dict[str, dict]) -> pd.DataFrame:
    """Per variant (a reference stands for itself), observer, patient and region: the mean AUC over its seeds, their
    standard deviation (0 for one seed) and how many seeds."""
    table = aucs.copy()
    table["variant"] = [entries.get(method, {}).get("variant", method) for method in table["method"]]
    grouped = table.groupby(["variant", "observer", "patient", "region"], sort=False)["auc"]
    out = grouped.agg(auc="mean", seed_sd=lambda values: float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
    out["seeds"] = grouped.size()
    return out.reset_index().rename(columns={"variant": "method"})


def false_positive_fractions(
    patches: dict, cases: pd.DataFrame, det_settings, *, fraction: float, reference: str = "original"
) -> pd.DataFrame:
    """The hallucination check (module docstring): per method, observer, fracture type and region (all levels, behind
    the heart), the false-positive fraction at the sensitivity the ``reference`` reaches at ``fraction`` false
    positives, with the templates of the detectability study (trained on even realisations, tested on odd ones)."""
    from xvertnet.evaluation.observer import OBSERVERS, observer_scores

    folds = cases["realisation"].to_numpy() % 2
    rows = []
    for kind in det_settings.kinds:
        present = cases.index[cases["present"] & cases["kind"].eq(kind)].to_numpy()
        absent = cases.index[~cases["present"] & cases["kind"].eq(kind)].to_numpy()
        scores = {
            name: observer_scores(values[present], values[absent], folds[present], folds[absent], det_settings.observer)
            for name, values in patches.items()
        }
        for region in ("all", TARGET_REGION):
            keep_p = (
                np.ones(len(present), bool) if region == "all" else cases.loc[present, "region"].eq(region).to_numpy()
            )
            keep_a = (
                np.ones(len(absent), bool) if region == "all" else cases.loc[absent, "region"].eq(region).to_numpy()
            )
            if keep_p.sum() < 4 or keep_a.sum() < 4:
                continue
            for observer_name in OBSERVERS:
                ref_p, ref_a = scores[reference][observer_name]
                threshold = np.quantile(ref_a[keep_a], 1.0 - fraction)
                sensitivity = float(np.mean(ref_p[keep_p] > threshold))
                for name in patches:
                    p_scores, a_scores = scores[name][observer_name]
                    # this method's threshold where it reaches the reference's sensitivity
                    own = np.quantile(p_scores[keep_p], 1.0 - sensitivity) if sensitivity > 0 else np.inf
                    rows.append(
                        {
                            "method": name,
                            "observer": observer_name,
                            "kind": kind,
                            "region": region,
                            "sensitivity": sensitivity,
                            "false_positive_fraction": float(np.mean(a_scores[keep_a] > own)),
                            "absent": int(keep_a.sum()),
                        }
                    )
    return pd.DataFrame(rows)


def run_observer_study(out_dir, entries: dict[str, dict], settings: ObserverStudySettings, *, demo=None) -> dict:
    """The whole fracture-observer study of the design study's ``entries`` ({entry: {method, settings, variant, seed,
    iteration}}, :meth:`xvertnet.plan.Plan.study_observer_entries`) into ``out_dir`` (module docstring); returns its
    summary (also ``summary.json``)."""
    from xvertnet.demo.demo_data import DemoSettings
    from xvertnet.evaluation.detectability import (
        build_method,
        collect_patches,
        patient_scenes,
        save_patches,
    )
    from xvertnet.evaluation.observer import OBSERVERS
    from xvertnet.evaluation.observer_selection import nested_choice, patient_aucs

    if not entries:
        raise InvalidValueError("study observer: no study entries")
    demo = demo or DemoSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    references = ["original", *settings.clahe_names()]
    det = settings.detectability([*references, *entries])
    started = time.perf_counter()
    scenes = [scene for patient in settings.patients for scene in patient_scenes(patient, det, demo)]
    projected = time.perf_counter() - started
    enhancers = {name: build_method(name) for name in references}
    enhancers.update({entry: entry_enhancer(spec) for entry, spec in entries.items()})
    examples: dict = {}
    seconds: dict = {}
    patches, cases = collect_patches(scenes, det, demo, enhancers, examples=examples, seconds=seconds)
    enhanced = time.perf_counter() - started - projected
    save_patches(out_dir, patches, cases)

    aucs = patient_aucs(patches, cases, det, observers=OBSERVERS)
    by_variant = variant_aucs(aucs, entries)
    variants = list(dict.fromkeys(spec["variant"] for spec in entries.values()))
    chooser = by_variant[by_variant["observer"].eq(settings.observer)].drop(columns=["observer"])
    folds = nested_choice(chooser, [*variants, *settings.clahe_names()], tolerance=settings.harm_tolerance)
    clahe_folds = nested_choice(chooser, settings.clahe_names(), tolerance=settings.harm_tolerance)
    recommended, ranking = _choose_on_all(chooser, [*variants, *settings.clahe_names()], settings)
    clahe_best, _ = _choose_on_all(chooser, settings.clahe_names(), settings, keep_best=True)
    tested = recommended if recommended in variants else _best_variant(ranking, variants)
    tests = _significance(patches, cases, det, entries, tested, clahe_best)
    false_positives = false_positive_fractions(patches, cases, det, fraction=settings.false_positive_fraction)

    for name, table in (
        ("patient_aucs.csv", aucs),
        ("variant_aucs.csv", by_variant),
        ("folds.csv", folds),
        ("clahe_folds.csv", clahe_folds),
        ("ranking.csv", ranking),
        ("tests.csv", tests),
        ("false_positives.csv", false_positives),
    ):
        with atomic_path(out_dir / name) as tmp:
            table.to_csv(tmp, index=False)
    summary = {
        "settings": settings.record(),
        "entries": {entry: {k: spec[k] for k in ("variant", "seed", "iteration")} for entry, spec in entries.items()},
        "recommended": recommended,
        "tested": tested,
        "clahe_best": clahe_best,
        "images_per_method": int(len(scenes) * det.realisations * (1 + len(det.kinds) * len(det.grades) * det.stride)),
        "cases": {"present": int(cases["present"].sum()), "absent": int((~cases["present"]).sum())},
        "timing_s": {
            "projection": round(projected, 1),
            "images_and_methods": round(enhanced, 1),
            "per_method": {name: round(value, 1) for name, value in seconds.items()},
            "total": round(time.perf_counter() - started, 1),
        },
    }
    from xvertnet.model.device import select_device
    from xvertnet.provenance import produced_by

    summary["produced_by"] = produced_by(str(select_device("auto")))
    from xvertnet.evaluation.detectability_figures import pairs_figure
    from xvertnet.evaluation.observer_study_report import real_radiograph_panel, write_markdown

    shown = [name for name in ("original", clahe_best, _seed_entry(entries, tested, 0)) if name]
    pairs_figure({name: examples[name] for name in shown if name in examples}, scenes[0], det, out_dir / "fracture.png")
    real_radiograph_panel(
        {name: enhancers[name] for name in shown}, out_dir / "real.png", shipped=build_method("xvertnet")
    )
    with atomic_path(out_dir / "summary.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2))
    write_markdown(out_dir, summary, settings)
    return summary


def _choose_on_all(chooser: pd.DataFrame, candidates, settings, *, keep_best: bool = False):
    """The candidate chosen on every patient (the recommendation), and the ranking; with ``keep_best``, the best score
    whether or not it passes (CLAHE's best clip limit, the comparator)."""
    from xvertnet.evaluation.observer_selection import wide_aucs
    from xvertnet.evaluation.study_selection import choose_on_patients

    wide = wide_aucs(chooser)
    patients = sorted(chooser.loc[chooser["region"].eq(TARGET_REGION), "patient"].unique())
    chosen, ranking = choose_on_patients(
        wide,
        list(candidates),
        patients,
        score=(f"fracture_auc_{TARGET_REGION}",),
        do_no_harm=(f"fracture_auc_{GUARD_REGION}",),
        tolerance=settings.harm_tolerance,
    )
    if keep_best and chosen is None:
        chosen = str(ranking.iloc[0]["entry"])
    return chosen, ranking


def _best_variant(ranking: pd.DataFrame, variants) -> str:
    ranked = ranking[ranking["entry"].isin(variants)]
    return str(ranked.iloc[0]["entry"]) if not ranked.empty else variants[0]


def _seed_entry(entries: dict[str, dict], variant: str, index: int) -> str | None:
    """The ``index``-th seed's entry of ``variant`` (None for a reference)."""
    found = [entry for entry, spec in entries.items() if spec["variant"] == variant]
    return found[index] if len(found) > index else None


def _significance(patches, cases, det, entries, variant: str, clahe_best: str) -> pd.DataFrame:
    """Each seed of ``variant`` against the original and CLAHE at ``clahe_best``: the detectability study's table
    (AUC, d', paired bootstrap over patients and cases) behind and above the heart."""
    from xvertnet.evaluation.detectability import analyse

    seeds = [entry for entry, spec in entries.items() if spec["variant"] == variant]
    chosen = {name: patches[name] for name in ["original", clahe_best, *seeds] if name in patches}
    table = analyse(chosen, cases, det, references=("original", clahe_best))
    table = table[table["method"].isin(seeds) & table["region"].isin([TARGET_REGION, GUARD_REGION])].copy()
    table["seed"] = [entries[name]["seed"] for name in table["method"]]
    return table.reset_index(drop=True)
