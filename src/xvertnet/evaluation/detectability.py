"""Can a reader find a vertebral fracture? Simulated fractures, signal-present and -absent radiographs, model observers.

For each held-out CT patient (never seen by the shipped model's training) and each vertebral
level in view whose body lies whole in the CT:

1. **Lesions.** :mod:`xvertnet.evaluation.fracture` compresses the level's body (wedge or biconcave, Genant
   grade 1 or 2). Projection is linear in attenuation, so the base attenuation volume is
   projected once per view (:func:`xvertnet.demo.drr.project`) and each lesion's difference
   volume (its bounding box only, turned as the view turns the volume) is projected alone and
   added: P_present = P_base + dP. Each patient is seen in several views (``views``: PA, turned
   4 degrees to the left, tilted 3 degrees up), so that the anatomy behind and around a level
   varies between images of one patient as it does between radiographs, not only between levels
   and patients.
2. **Images.** Lesions at levels far apart do not overlap, so one image carries several: for
   each fracture type and grade and each of ``stride`` interleaved sets of levels (levels i with
   i mod stride = j), a signal-present image holds a lesion at every level of the set; one
   signal-absent image per realisation serves every type. Each image is an independent
   exposure (:mod:`xvertnet.demo.xray_detector`: the demo's standard dose, the exposure control set
   once on the lesion-free view, quantum noise, scatter, MTF) through the for-presentation step
   (:mod:`xvertnet.demo.presentation`, rendered on each image as a modality does: a lesion moves its
   percentiles and band maxima by far less than the noise does), quantised to 12 bits, exactly as
   the demo's images are made.
3. **Methods.** Every method enhances every image whole, as a user would (XVertNet through
   ``xvertnet enhance``'s path, at its working height with detail carried back to full size).
4. **Observers.** Around the lesion's place (location known exactly: the centroid of the lesion's
   projected change at the highest grade; a signal-absent image is read at the same place) a patch of the
   *displayed* image (one window, 8 bits) goes to the channelized Hotelling and the
   non-prewhitening-with-eye-filter observers (:mod:`xvertnet.evaluation.observer`); templates are trained on
   even realisations and tested on odd ones, and the other way round. AUC and d' per method,
   type, grade and region (behind the heart, above it, below the diaphragm), with 95 % intervals
   from a bootstrap over patients and, within them, cases; paired differences against the
   original and against CLAHE at its default clip limit.
5. **Validation on the data.** The original at a quarter and four times the dose: d' should grow
   with dose (as its square root where quantum noise dominates, less where anatomy does) and with
   grade.
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
from xvertnet.evaluation.fracture import (
    FRACTURE_TYPES,
    GRADE_HEIGHT_LOSS,
    REGIONS,
    Fracture,
    body_height_mm,
    example_level,
    fracture_volume,
    level_region,
)
from xvertnet.evaluation.observer import (
    OBSERVERS,
    ObserverSettings,
    bootstrap_indices,
    displayed,
    observer_scores,
    paired_difference,
    patch,
    summarise,
)
from xvertnet.evaluation.reading import write_reading_page
from xvertnet.io.atomic import atomic_path
from xvertnet.provenance import made_by_line, produced_by
from xvertnet.settings import FromConfig

log = logging.getLogger(__name__)

#: The CLAHE row everything is also compared with (the project's CLAHE default).
CLAHE_REFERENCE = "clahe-0.01"


@dataclasses.dataclass(frozen=True)
class DetectabilitySettings(FromConfig):
    """The fracture-detectability study (config section ``detectability``; module docstring)."""

    SECTION: ClassVar[str] = "detectability"

    #: Held-out CT patients (lidc0001 trained the shipped model).
    patients: tuple[str, ...] = ("tschest", "lung1", "lung2")
    #: Views of each patient (names of the demo's views): PA, turned 4 degrees to the left, tilted 3 degrees up.
    views: tuple[str, ...] = ("ap", "rotl4", "tiltu3")
    #: Independent noise realisations of each image, per view.
    realisations: int = 4
    kinds: tuple[str, ...] = FRACTURE_TYPES
    grades: tuple[int, ...] = (1, 2)
    stride: int = 3
    #: Methods: ``original``, ``xvertnet`` (the shipped model, or ``model``), ``clahe-<clip limit>``, any
    #: registered method that needs no training, or a learned baseline whose model is in ``baselines``.
    methods: tuple[str, ...] = ("original", "xvertnet", "clahe-0.005", "clahe-0.01", "clahe-0.02", "clahe-0.03")
    model: str = ""
    #: Folder of the workflow's learned baselines (``<baselines>/<method>/model.json``, as ``make demo`` publishes
    #: them in results/models/baselines). A model whose record names one of ``patients`` among its training
    #: images, or names none, is refused.
    baselines: str = ""
    #: Dose factors of the validation run (the original only).
    validation_doses: tuple[float, ...] = (0.25, 4.0)
    #: Smallest projected body, pixels (levels cut by the field of view are left out).
    min_level_pixels: int = 400
    #: Vertebral body heights the study accepts, mm (T1 about 14, L3 about 28; an automatic label outside is wrong).
    body_height_mm: tuple[float, float] = (12.0, 32.0)
    seed: int = 0
    observer: ObserverSettings = ObserverSettings()

    @classmethod
    def from_config(cls, section: dict | None) -> DetectabilitySettings:
        section = dict(section or {})
        if isinstance(section.get("observer"), dict):
            section["observer"] = ObserverSettings.from_config(section["observer"])
        return super().from_config(section)

    def __post_init__(self):
        for name in ("patients", "views", "methods"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value or not all(isinstance(item, str) for item in value):
                raise InvalidValueError(f"detectability {name} must be a non-empty list of names, got {value!r}")
        if self.realisations < 2 or self.realisations % 2:
            raise InvalidValueError(
                f"detectability realisations must be even and at least 2 (two folds), got {self.realisations}"
            )
        unknown = [kind for kind in self.kinds if kind not in FRACTURE_TYPES]
        if unknown:
            raise InvalidValueError(f"detectability kinds: unknown fracture type '{unknown[0]}'")
        unknown = [grade for grade in self.grades if grade not in GRADE_HEIGHT_LOSS]
        if unknown:
            raise InvalidValueError(f"detectability grades: unknown grade {unknown[0]}")


def build_method(name: str, model: str = "", baselines: str = "", held_out=()):
    """An ``image -> enhanced image`` function for a study method name (:class:`DetectabilitySettings`); a learned
    baseline comes from its model in ``baselines`` (:func:`trained_baseline`)."""
    from xvertnet.methods import get_method

    if name == "xvertnet":
        from xvertnet.model.inference import Chain
        from xvertnet.model.whole_image import enhance_image, model_dirs

        chain = Chain(model_dirs(Path(model) if model else None), device="auto")
        return lambda image: enhance_image(chain, image)[0]
    if name.startswith("clahe-"):
        method = get_method("clahe", {"clip_limit": float(name.split("-", 1)[1])})
    else:
        method = get_method(name)
    if method.trainable:
        if not baselines:
            raise InvalidValueError(
                f"detectability: method '{name}' needs training; give the folder of the workflow's trained baselines "
                "(--baselines results/models/baselines after make demo)"
            )
        method = trained_baseline(name, Path(baselines), held_out)
    return method.enhance_whole


def baseline_record(model_dir: Path) -> dict:
    """A learned baseline's ``model.json`` (one-line errors naming it when missing or unreadable)."""
    from xvertnet.errors import InputFileError

    record_path = Path(model_dir) / "model.json"
    if not record_path.is_file():
        raise InputFileError(
            record_path, f"no trained model of '{Path(model_dir).name}' (train it with the workflow: make demo)"
        )
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as error:
        raise InputFileError(record_path, f"not a readable model record ({type(error).__name__})") from None
    if not isinstance(record, dict):
        raise InputFileError(record_path, "not a model record (a JSON object)")
    return record


def trained_baseline(name: str, baselines: Path, held_out):
    """The learned baseline ``name`` loaded from ``baselines/<name>``, with the parameters it was trained with.

    Its ``model.json`` must say what it was trained on (``trained_on``, written by the workflow's
    ``train_baseline``): a model trained on the project's images must name the patient of every one of them, and
    none may be a ``held_out`` patient (compared without regard to case): no model trained on a test patient
    enters the study. A model trained on data of its own (Madmad's synthetic images) names none.
    """
    from xvertnet.errors import InputFileError
    from xvertnet.methods import get_method

    model_dir = baselines / name
    record_path = model_dir / "model.json"
    record = baseline_record(model_dir)
    trained_on = record.get("trained_on")
    method = get_method(name, record.get("params") or {})
    if not isinstance(trained_on, dict) or "source" not in trained_on:
        raise InputFileError(
            record_path, "does not record what the model was trained on (trained before that was recorded: retrain it)"
        )
    if method.uses_training_crops:
        unmapped = trained_on.get("unmapped_image_ids", [])
        if unmapped:
            raise InputFileError(
                record_path,
                f"{len(unmapped)} training image(s), such as {unmapped[0]}, have no patient in their manifest "
                "(add a `patient` column): cannot rule out a test patient",
            )
        patients = trained_on.get("patients")
        if not patients or not isinstance(patients, list):
            raise InputFileError(record_path, "names no training patient: cannot rule out a test patient")
        study_patients = {patient.lower() for patient in held_out}
        seen = sorted({str(p) for p in patients if str(p).lower() in study_patients})
        if seen:
            raise InputFileError(
                record_path, f"the model was trained on {', '.join(seen)}, a held-out patient of the study"
            )
    method.load(model_dir)
    return method


def trained_on_text(trained_on: dict | None) -> str:
    """What a learned baseline's record says it saw, in words."""
    if not trained_on:
        return "its record not at hand"
    if trained_on.get("source") == "data of its own":
        return "trained on data of its own"
    return f"trained on {', '.join(trained_on.get('patients', [])) or 'no named patient'}"


@dataclasses.dataclass
class PatientScene:
    """One view of a patient: its lesion-free projection, its lesions' projected differences and where each level is."""

    patient: str
    line_integral: np.ndarray
    levels: dict[int, dict]  # level -> {"centre": (row, col), "lesion_centre": {kind: (row, col)}, "region", "index"}
    differences: dict[tuple[int, str, int], np.ndarray]  # (level, kind, grade) -> dP
    examples: dict
    view: str = "ap"


def study_views(settings: DetectabilitySettings, demo) -> list:
    """The demo's views that ``settings.views`` names, in that order (an unknown name is an error naming the known)."""
    known = {view.name: view for view in demo.views}
    unknown = [name for name in settings.views if name not in known]
    if unknown:
        raise InvalidValueError(
            f"detectability views: unknown view '{unknown[0]}' (the demo's views: {', '.join(known)})"
        )
    return [known[name] for name in settings.views]


def patient_scenes(patient: str, settings: DetectabilitySettings, demo) -> list[PatientScene]:
    """Project one patient's CT in each of the study's views, and every lesion of the study in each (module
    docstring, step 1). The lesions are made once, in the CT; each view turns a lesion's change (its box only) as it
    turns the volume. A level enters when it is whole in the CT, its body's height is plausible and its projection
    is large enough in every view, so that every view holds the same levels."""
    from scipy import ndimage

    from xvertnet.demo.ct_volumes import load_patient
    from xvertnet.demo.demo_data import vertebra_levels
    from xvertnet.demo.drr import (
        CONTRAST_ENHANCED,
        attenuation,
        cone_sum,
        detector_grid,
        project,
        rotate_block,
        thin_slices,
        unenhance_blood,
    )

    views = study_views(settings, demo)
    volume = load_patient(patient)
    levels, _ = vertebra_levels(volume)
    hounsfield = volume.hounsfield
    if patient in CONTRAST_ENHANCED:
        hounsfield, _ = unenhance_blood(hounsfield, volume.spacing, levels)
    depth = levels.shape[2]
    complete = [
        level
        for level in range(1, int(levels.max()) + 1)
        if (levels == level).any()
        and 0 < np.flatnonzero((levels == level).any(axis=(0, 1))).min()
        and np.flatnonzero((levels == level).any(axis=(0, 1))).max() < depth - 1
    ]
    regions = {level: level_region(hounsfield, volume.spacing, levels, level) for level in complete}
    max_slice_mm = demo.geometry(views[0]).max_slice_mm
    mu, spacing = thin_slices(attenuation(hounsfield, demo.bone_boost), volume.spacing, max_slice_mm)
    thin_levels, _ = thin_slices(levels, volume.spacing, max_slice_mm, labels=True)
    del hounsfield, volume
    plausible = []
    for level in complete:
        height = body_height_mm(mu, thin_levels, level, spacing)
        if settings.body_height_mm[0] <= height <= settings.body_height_mm[1]:
            plausible.append(level)
        else:
            log.info(
                "%s: level %d left out: its body is %.0f mm high (merged or partial label)", patient, level, height
            )
    lesions, examples = {}, {}
    for level in plausible:
        for kind in settings.kinds:
            for grade in settings.grades:
                box, values, _ = fracture_volume(mu, thin_levels, Fracture(level, kind, grade), spacing=spacing)
                lesions[(level, kind, grade)] = (values.astype(np.float64) - mu[box], [s.start for s in box])
                if grade == max(settings.grades):  # the figures' example of each type, at the highest grade
                    examples.setdefault(level, {})[kind] = {
                        "before": mu[box].copy(),
                        "after": values,
                        "box": box,
                        "level": level,
                    }
    projections = []
    for view in views:
        geometry = demo.geometry(view)
        line_integral, projected = project(mu, spacing, geometry, levels=thin_levels)
        u, w, source_a, detector_a = detector_grid(mu.shape, spacing, geometry)
        differences = {}
        for key, (change, corner) in lesions.items():
            turned, turned_corner = rotate_block(change, corner, mu.shape, spacing, geometry)
            differences[key] = cone_sum(
                turned, spacing, u, w, source_a, detector_a - source_a, offset=turned_corner, full_shape=mu.shape
            )
        projections.append((view, line_integral, projected, differences))
    found = {}
    for level in plausible:
        sizes = [int((projected == level).sum()) for _, _, projected, _ in projections]
        if min(sizes) < settings.min_level_pixels:
            log.info("%s: level %d left out: %d pixels in some view", patient, level, min(sizes))
            continue
        found[level] = {"region": regions[level]}
    for index, level in enumerate(sorted(found)):
        found[level]["index"] = index
    shown = examples.get(example_level(found), {}) if found else {}
    scenes = []
    for view_index, (view, line_integral, projected, differences) in enumerate(projections):
        placed = {}
        for level, info in found.items():
            # where the lesion is (location known exactly): the centroid of its projected change at the highest grade
            placed[level] = {
                **info,
                "centre": tuple(float(c) for c in ndimage.center_of_mass(projected == level)),
                "lesion_centre": {
                    kind: tuple(
                        float(c)
                        for c in ndimage.center_of_mass(np.abs(differences[(level, kind, max(settings.grades))]))
                    )
                    for kind in settings.kinds
                },
            }
        kept = {key: value for key, value in differences.items() if key[0] in found}
        scenes.append(PatientScene(patient, line_integral, placed, kept, shown if view_index == 0 else {}, view.name))
    log.info(
        "%s: %d levels (%s) in %d views (%s), %d lesions projected in each",
        patient,
        len(found),
        ", ".join(f"{level}:{found[level]['region']}" for level in sorted(found)),
        len(views),
        ", ".join(settings.views),
        len(scenes[0].differences) if scenes else 0,
    )
    return scenes


class Acquisition:
    """Exposures of one view: the exposure control of the standard dose (on the lesion-free view) fixed once; each
    image is rendered for presentation on its own, as a modality does and as the demo's images are."""

    def __init__(self, line_integral: np.ndarray, demo, dose_factor: float = 1.0):
        from xvertnet.demo.demo_data import REFERENCE_CONDITION
        from xvertnet.demo.xray_detector import incident_quanta

        self.demo = demo
        self.exposure = dataclasses.replace(
            demo.exposure(REFERENCE_CONDITION), detector_air_kerma_ugy=demo.detector_air_kerma_ugy * dose_factor
        )
        self.quanta = incident_quanta(line_integral, demo.exposure(REFERENCE_CONDITION)) * dose_factor

    def image(self, line_integral: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One exposure, for presentation, 12 bits, as a float image in [0, 1]."""
        from xvertnet.demo.presentation import present
        from xvertnet.demo.xray_detector import detect

        shown = present(
            detect(line_integral, self.exposure, rng, quanta=self.quanta), self.demo.presentation, self.demo.pixel_mm
        )
        return np.rint(shown * 4095.0) / 4095.0


def scene_images(scene: PatientScene, settings: DetectabilitySettings, acquisition: Acquisition, seed_key):
    """The study's images of one patient (module docstring, step 2): yields (image, lesion key or None, levels, r)."""
    for r in range(settings.realisations):
        rng = np.random.default_rng([settings.seed, *seed_key, r])
        yield acquisition.image(scene.line_integral, rng), None, sorted(scene.levels), r
        for kind in settings.kinds:
            for grade in settings.grades:
                for part in range(settings.stride):
                    chosen = [level for level, info in scene.levels.items() if info["index"] % settings.stride == part]
                    if not chosen:
                        continue
                    line = scene.line_integral + sum(scene.differences[(level, kind, grade)] for level in chosen)
                    yield acquisition.image(line, rng), (kind, grade), chosen, r


def collect_patches(
    scenes,
    settings: DetectabilitySettings,
    demo,
    enhancers: dict,
    *,
    dose_factor: float = 1.0,
    examples: dict | None = None,
    seconds: dict | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Every method's displayed patches of every image: ({method: (N, s, s) array}, one row per patch). ``seconds``
    (when given) gathers each method's enhancement time; each patient's is logged as it finishes."""
    size = settings.observer.patch_px
    patches = {name: [] for name in enhancers}
    rows = []
    seconds = {} if seconds is None else seconds
    for p_index, scene in enumerate(scenes):
        acquisition = Acquisition(scene.line_integral, demo, dose_factor)
        before, images = dict(seconds), 0
        # a seed per view of each patient and dose: every image an independent exposure
        for image, lesion, chosen, r in scene_images(
            scene, settings, acquisition, (p_index, int(round(dose_factor * 1000)))
        ):
            images += 1
            # a signal-absent image is read where each type of lesion would be; a signal-present one where its lesion is
            places = [(level, kind) for kind in ([lesion[0]] if lesion else settings.kinds) for level in chosen]
            for name, enhance in enhancers.items():
                started = time.perf_counter()
                enhanced = enhance(image)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
                shown = displayed(enhanced)
                for level, kind in places:  # displayed values are k / 255 exactly: kept as 8-bit
                    centre = scene.levels[level]["lesion_centre"][kind]
                    patches[name].append(np.rint(patch(shown, centre, size) * 255.0).astype(np.uint8))
                if examples is not None and r == 0 and p_index == 0 and example_level(scene.levels) in chosen:
                    examples.setdefault(name, {})["absent" if lesion is None else f"{lesion[0]}-g{lesion[1]}"] = shown
            for level, kind in places:
                rows.append(
                    {
                        "patient": scene.patient,
                        "view": scene.view,
                        "level": level,
                        "region": scene.levels[level]["region"],
                        "realisation": r,
                        "present": lesion is not None,
                        "kind": kind,
                        "grade": lesion[1] if lesion else 0,
                    }
                )
        spent = {name: seconds.get(name, 0.0) - before.get(name, 0.0) for name in enhancers}
        log.info(
            "%s %s (dose x%g): %d images, enhancement %s",
            scene.patient,
            scene.view,
            dose_factor,
            images,
            ", ".join(f"{name} {value:.0f} s" for name, value in spent.items()),
        )
    return {name: np.stack(values) / np.float32(255.0) for name, values in patches.items()}, pd.DataFrame(rows)


def analyse(
    patches: dict, cases: pd.DataFrame, settings: DetectabilitySettings, *, references=("original", CLAHE_REFERENCE)
):
    """AUC and d' per method, observer, lesion and region, and paired differences against ``references``."""
    rows = []
    for kind in settings.kinds:
        absent = cases.index[~cases["present"] & (cases["kind"] == kind)].to_numpy()
        for grade in settings.grades:
            present = cases.index[cases["present"] & (cases["kind"] == kind) & (cases["grade"] == grade)].to_numpy()
            scores = {
                name: observer_scores(
                    values[present],
                    values[absent],
                    cases["realisation"].to_numpy()[present] % 2,
                    cases["realisation"].to_numpy()[absent] % 2,
                    settings.observer,
                )
                for name, values in patches.items()
            }
            for region in ("all", *REGIONS):
                keep_p = (
                    np.ones(len(present), bool)
                    if region == "all"
                    else (cases.loc[present, "region"] == region).to_numpy()
                )
                keep_a = (
                    np.ones(len(absent), bool)
                    if region == "all"
                    else (cases.loc[absent, "region"] == region).to_numpy()
                )
                if keep_p.sum() < 4 or keep_a.sum() < 4:
                    continue
                resamples = bootstrap_indices(
                    cases.loc[present[keep_p], "patient"].to_numpy(),
                    cases.loc[absent[keep_a], "patient"].to_numpy(),
                    settings.observer.bootstrap,
                    settings.observer.seed,
                )
                for observer_name in OBSERVERS:
                    for name in patches:
                        p_scores, a_scores = scores[name][observer_name]
                        row = {
                            "method": name,
                            "observer": observer_name,
                            "kind": kind,
                            "grade": grade,
                            "region": region,
                            "patients": int(cases.loc[present[keep_p], "patient"].nunique()),
                            **summarise(p_scores[keep_p], a_scores[keep_a], resamples),
                        }
                        for reference in references:
                            if reference in patches and reference != name:
                                ref_p, ref_a = scores[reference][observer_name]
                                paired = paired_difference(
                                    (p_scores[keep_p], a_scores[keep_a]), (ref_p[keep_p], ref_a[keep_a]), resamples
                                )
                                row[f"vs_{reference}"] = paired["difference"]
                                row[f"vs_{reference}_low"], row[f"vs_{reference}_high"] = paired["low"], paired["high"]
                                row[f"vs_{reference}_p"] = paired["p"]
                        rows.append(row)
    return pd.DataFrame(rows)


def run_study(out_dir, settings: DetectabilitySettings, demo=None) -> dict:
    """The whole study into ``out_dir``: detectability.csv, detectability.md, validation.json and .md, figures."""
    from xvertnet.demo.demo_data import DemoSettings

    demo = demo or DemoSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    scenes = [scene for patient in settings.patients for scene in patient_scenes(patient, settings, demo)]
    projected = time.perf_counter() - started
    enhancers = {
        name: build_method(name, settings.model, settings.baselines, settings.patients) for name in settings.methods
    }
    learned = learned_baselines(settings)
    examples: dict = {}
    method_seconds: dict = {}
    patches, cases = collect_patches(scenes, settings, demo, enhancers, examples=examples, seconds=method_seconds)
    enhanced = time.perf_counter() - started - projected
    save_patches(out_dir, patches, cases)
    write_reading_page(patches, cases, out_dir / "reading", seed=settings.seed)
    table = analyse(patches, cases, settings)
    choice = clahe_choice(out_dir, patches, cases, settings)
    validation = {"dose": {}, "timing_s": {}, "baselines": baseline_records(settings, learned)}
    if "original" in settings.methods:
        validation["dose"]["1.0"] = _dprime_summary(table[table["method"] == "original"])
        for factor in settings.validation_doses:
            dose_patches, dose_cases = collect_patches(
                scenes, settings, demo, {"original": enhancers["original"]}, dose_factor=factor
            )
            dose_table = analyse(dose_patches, dose_cases, settings, references=())
            validation["dose"][str(factor)] = _dprime_summary(dose_table)
    validation["timing_s"] = {
        "projection": round(projected, 1),
        "images_and_methods": round(enhanced, 1),
        "per_method": {name: round(value, 1) for name, value in method_seconds.items()},
        "total": round(time.perf_counter() - started, 1),
    }
    from xvertnet.model.device import select_device

    validation["produced_by"] = produced_by(str(select_device("auto")))
    validation["images_per_method"] = int(
        len(scenes) * settings.realisations * (1 + len(settings.kinds) * len(settings.grades) * settings.stride)
    )
    validation["cases"] = {
        "present": int(cases["present"].sum()),
        "absent": int((~cases["present"]).sum()),
        "levels": {
            scene.patient: {str(level): info["region"] for level, info in sorted(scene.levels.items())}
            for scene in scenes
        },  # every view of a patient holds the same levels (patient_scenes)
        "views": list(settings.views),
    }
    with atomic_path(out_dir / "detectability.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "validation.json") as tmp:
        Path(tmp).write_text(json.dumps(validation, indent=2))
    with atomic_path(out_dir / "detectability.md") as tmp:
        Path(tmp).write_text(detectability_markdown(table, settings, validation, choice))
    _write_validation(out_dir, validation)
    from xvertnet.evaluation.detectability_figures import clahe_curve_figure, fracture_figure, pairs_figure

    fracture_figure(scenes[0], out_dir / "fracture_types.png")
    pairs_figure(examples, scenes[0], settings, out_dir / "pairs.png")
    clahe_curve_figure(table, out_dir / "clahe_curve.png")
    return validation


def clahe_choice(out_dir: Path, patches: dict, cases: pd.DataFrame, settings: DetectabilitySettings) -> list[str]:
    """CLAHE's clip limit chosen on other patients, nested (:mod:`xvertnet.evaluation.observer_selection`), when the run
    has CLAHE at two or more clip limits and two or more patients: ``patient_aucs.csv`` and ``clahe_choice.csv`` in
    ``out_dir``, and the lines the study's markdown gives it."""
    from xvertnet.evaluation.observer_selection import nested_choice, nested_markdown, patient_aucs

    candidates = [name for name in settings.methods if name.startswith("clahe-") and name in patches]
    if len(candidates) < 2 or "original" not in patches or cases["patient"].nunique() < 2:
        return []
    aucs = patient_aucs(patches, cases, settings)
    folds = nested_choice(aucs, candidates)
    with atomic_path(out_dir / "patient_aucs.csv") as tmp:
        aucs.to_csv(tmp, index=False)
    with atomic_path(out_dir / "clahe_choice.csv") as tmp:
        folds.to_csv(tmp, index=False)
    return nested_markdown(folds, candidates)


def save_patches(out_dir: Path, patches: dict, cases: pd.DataFrame) -> None:
    """The observers' inputs (``patches.npz``, 8-bit, one array per method; ``cases.csv``, one row per patch), so
    that the analysis can be rerun with other observer settings without the images (:func:`reanalyse`)."""
    with atomic_path(out_dir / "patches.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle, **{name: np.rint(values * 255.0).astype(np.uint8) for name, values in patches.items()}
            )
    with atomic_path(out_dir / "cases.csv") as tmp:
        cases.to_csv(tmp, index=False)


def reanalyse(out_dir, settings: DetectabilitySettings) -> pd.DataFrame:
    """The table, its markdown and the reading page again from a finished study's ``patches.npz``, ``cases.csv`` and
    ``validation.json`` (other observer settings, without making the images again); returns the table."""
    out_dir = Path(out_dir)
    with np.load(out_dir / "patches.npz") as stored:
        patches = {name: stored[name] / np.float32(255.0) for name in stored.files}
    cases = pd.read_csv(out_dir / "cases.csv", keep_default_na=False)
    validation = json.loads((out_dir / "validation.json").read_text())
    learned = learned_baselines(settings)
    if learned and set(learned) - set(validation.get("baselines", {})) and settings.baselines:
        # a run made before the records were kept: the models it used, read from their folder
        validation["baselines"] = {**baseline_records(settings, learned), **validation.get("baselines", {})}
    from xvertnet.model.device import select_device

    validation["reanalysed_by"] = produced_by(str(select_device("auto")))
    table = analyse(patches, cases, settings)
    choice = clahe_choice(out_dir, patches, cases, settings)
    write_reading_page(patches, cases, out_dir / "reading", seed=settings.seed)
    with atomic_path(out_dir / "detectability.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "detectability.md") as tmp:
        Path(tmp).write_text(detectability_markdown(table, settings, validation, choice))
    with atomic_path(out_dir / "validation.json") as tmp:
        Path(tmp).write_text(json.dumps(validation, indent=2))
    _write_validation(out_dir, validation)
    from xvertnet.evaluation.detectability_figures import clahe_curve_figure

    clahe_curve_figure(table, out_dir / "clahe_curve.png")
    return table


def validation_markdown(validation: dict) -> str:
    """The original's d' per lesion and observer at each dose factor of the run (region all): the check that the
    observers see more at a higher dose. Headed like every docs table, by the run's command, commit and machine."""
    source = validation.get("produced_by", {})
    factors = sorted(validation["dose"], key=float)
    names = {0.25: "quarter dose", 1.0: "standard dose", 4.0: "four times"}
    keys = list(dict.fromkeys(key for factor in factors for key in validation["dose"][factor]))
    # lesions in the order kind, grade, then observer (cho first)
    keys.sort(key=lambda key: (key.split()[1].split("-g")[0] != "wedge", key.split()[1], key.split()[0] != "cho"))
    lines = [
        made_by_line("xvertnet detectability", source),
        "",
        "d' of the original, region all, by dose factor (1 = the study's standard dose):",
        "",
        "| lesion | observer | " + " | ".join(names.get(float(f), f"dose x{float(f):g}") for f in factors) + " |",
        "|---|---|" + "---|" * len(factors),
    ]
    for key in keys:
        observer_name, lesion = key.split(" ", 1)
        kind, grade = lesion.split("-g")
        cells = [f"{validation['dose'][f][key]:.2f}" if key in validation["dose"][f] else "–" for f in factors]
        lines.append(f"| {kind} grade {grade} | {observer_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_validation(out_dir: Path, validation: dict) -> None:
    if validation.get("dose"):
        with atomic_path(out_dir / "validation.md") as tmp:
            Path(tmp).write_text(validation_markdown(validation))


def _dprime_summary(table: pd.DataFrame) -> dict:
    part = table[(table["region"] == "all")]
    return {f"{row.observer} {row.kind}-g{row.grade}": round(float(row.dprime), 3) for row in part.itertuples()}


def headline(table: pd.DataFrame, *, references=("original", CLAHE_REFERENCE)) -> list[str]:
    """One line per observer, region and method: mean AUC difference to each reference over the lesions, and in how
    many lesions the paired difference is significant (95 % interval excluding 0) up or down."""
    lines = []
    for observer_name in OBSERVERS:
        for region in ("behind_heart", "above_heart"):
            part = table[(table["observer"] == observer_name) & (table["region"] == region)]
            if part.empty:
                continue
            for method in part["method"].unique():
                said = []
                for reference in references:
                    column = f"vs_{reference}"
                    rows = part[part["method"] == method]
                    if method == reference or column not in rows or rows[column].isna().all():
                        continue
                    up = int((rows[f"{column}_low"] > 0).sum())
                    down = int((rows[f"{column}_high"] < 0).sum())
                    said.append(
                        f"vs {reference} {rows[column].mean():+.3f} (higher in {up}, lower in {down} of {len(rows)})"
                    )
                if said:
                    lines.append(
                        f"- {observer_name}, {region.replace('_', ' ')}, **{method}**: mean AUC "
                        f"{part[part['method'] == method]['auc'].mean():.3f}; " + "; ".join(said)
                    )
    return lines


#: Why a learned method of the comparison is not in ``make detectability``'s run (said in the table note).
NOT_IN_STUDY = {
    "led": "LED: its diffusion sampling takes about 20 s per whole image here, 2.6 h for the study's 468 images a method",
    "lut-mapping-bone": "lut-mapping-bone: trained toward the bone-emphasised CT targets, which only the design study's run makes",
    "srcnn": "srcnn, vdsr, vdsr-dehaze: the super-resolution seed's networks, trained by make sr-table",
}
NOT_IN_STUDY["vdsr"] = NOT_IN_STUDY["vdsr-dehaze"] = NOT_IN_STUDY["srcnn"]


def learned_baselines(settings: DetectabilitySettings) -> list[str]:
    """The study's methods that are learned baselines (loaded from ``settings.baselines``)."""
    from xvertnet.method_catalogue import CATALOGUE

    return [name for name in settings.methods if name in CATALOGUE and CATALOGUE[name].trainable]


def baseline_records(settings: DetectabilitySettings, names) -> dict:
    """Per learned baseline of the run: what its model saw and its weights' sha256 (kept in validation.json)."""
    records = {}
    for name in names:
        record = baseline_record(Path(settings.baselines) / name)
        records[name] = {"trained_on": record.get("trained_on"), "model_sha256": record.get("model_sha256")}
    return records


def left_out_line(settings: DetectabilitySettings, validation: dict | None = None) -> str:
    """Which compared methods the study runs from the workflow's models (as ``validation['baselines']`` recorded
    them), which it does not run, and why."""
    from xvertnet.method_catalogue import CATALOGUE

    learned = learned_baselines(settings)
    trained = sorted(name for name, traits in CATALOGUE.items() if traits.trainable and name not in learned)
    untrained = sorted(
        name
        for name, traits in CATALOGUE.items()
        if not traits.trainable and not name.startswith("xvertnet") and name not in ("original", "clahe")
        and name not in settings.methods
    )  # fmt: skip
    said = []
    if learned:
        records = (validation or {}).get("baselines", {})
        by_source: dict[str, list[str]] = {}
        for name in learned:
            by_source.setdefault(trained_on_text((records.get(name) or {}).get("trained_on")), []).append(name)
        described = "; ".join(f"{', '.join(names)} {text}" for text, names in by_source.items())
        said.append(
            f"Learned baselines: the workflow's models in `{settings.baselines}` ({described}; each model's record "
            "checked: no study patient among its training images)."
        )
    reasons = "; ".join(dict.fromkeys(NOT_IN_STUDY[name] for name in trained if name in NOT_IN_STUDY))
    not_run = []
    if trained:
        not_run.append(
            f"{', '.join(trained)} (learned, not in `detectability.methods`"
            + (f"; {reasons}" if reasons else "")
            + "; add them with `--methods` and a `--baselines` folder whose models saw no study patient)"
        )
    if untrained:
        not_run.append(f"{', '.join(untrained)} (untrained, not in `detectability.methods`: add them with `--methods`)")
    if not_run:
        said.append(f"Not run: {'; '.join(not_run)}.")
    said.append("XVertNet is the model set shipped in the package.")
    return " ".join(said)


def levels_line(validation: dict) -> str:
    """How many levels (and patients) each region holds: a region of few levels or one patient says little."""
    found: dict[str, list[str]] = {}
    for patient, levels in validation.get("cases", {}).get("levels", {}).items():
        for region in levels.values():
            found.setdefault(region, []).append(patient)
    parts = [
        f"{region.replace('_', ' ')}: {len(patients)} levels of {len(set(patients))} patients"
        for region, patients in sorted(found.items())
    ]
    return ("Levels per region: " + "; ".join(parts) + ".") if parts else ""


def _p_value(p: float, resamples: int) -> str:
    """A bootstrap p-value as text: below the resolution of ``resamples`` draws it is a bound, not 0."""
    return f"p < {1.0 / resamples:.3g}" if p < 1.0 / resamples else f"p {p:.2f}"


def detectability_markdown(
    table: pd.DataFrame, settings: DetectabilitySettings, validation: dict, choice: list[str] | None = None
) -> str:
    """The detectability table: per lesion and region, each method's AUC (95 % CI) for each observer; ``choice``:
    the lines of CLAHE's nested choice (:func:`clahe_choice`), after the tables."""
    source = validation.get("produced_by", {})
    lines = [
        "# Fracture detectability per method",
        "",
        made_by_line("xvertnet detectability", source).removesuffix(".")
        + f"; run time {validation.get('timing_s', {}).get('total', '?')} s"
        + (
            f"; table and notes written again from its patches at commit {validation['reanalysed_by']['commit']} "
            "(`--reanalyse`)."
            if validation.get("reanalysed_by")
            else "."
        ),
        "",
        f"Held-out CT patients {', '.join(settings.patients)}, each in the views {', '.join(settings.views)}; "
        f"{settings.realisations} noise realisations of each image in each view; "
        f"{validation['cases']['present']} signal-present and {validation['cases']['absent']} signal-absent patches "
        f"({settings.observer.patch_px} px) of displayed images (one window, 8 bits). AUC (95 % CI, bootstrap over "
        "patients and cases); Delta: paired AUC difference against the original (p). cho: channelized Hotelling "
        f"({settings.observer.channels} channels); npwe: non-prewhitening with an eye filter; both with internal noise "
        f"of {settings.observer.internal_noise} times the external variance of their decision variable.",
        "",
        left_out_line(settings, validation),
        "",
    ]
    lines += [levels_line(validation), "", "## Headline", "", *headline(table), ""]
    for observer_name in OBSERVERS:
        part = table[table["observer"] == observer_name]
        lines += [
            f"## {observer_name}",
            "",
            "| lesion | region | " + " | ".join(settings.methods) + " |",
            "|---|---|" + "---|" * len(settings.methods),
        ]
        for (kind, grade, region), group in part.groupby(["kind", "grade", "region"], sort=False):
            cells = []
            for name in settings.methods:
                row = group[group["method"] == name]
                if row.empty:
                    cells.append("")
                    continue
                row = row.iloc[0]
                cell = f"{row.auc:.3f} ({row.auc_low:.2f}-{row.auc_high:.2f})"
                if name != "original" and "vs_original" in row and np.isfinite(row.get("vs_original", np.nan)):
                    cell += (
                        f" Delta {row.vs_original:+.3f} ({_p_value(row.vs_original_p, settings.observer.bootstrap)})"
                    )
                cells.append(cell)
            lines.append(f"| {kind} grade {grade} | {region.replace('_', ' ')} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += choice or []
    lines += [
        "## Validation on the data (the original)",
        "",
        "d' by dose factor (region all): " + json.dumps(validation["dose"]),
        "",
        f"Run time: {validation['timing_s']}",
        "",
    ]
    return "\n".join(lines)
