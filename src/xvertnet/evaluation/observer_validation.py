"""Known-answer checks of the model observers, run before the observers are trusted on radiographs.

Each check returns what it expected and what it measured; ``tests/evaluation`` asserts on them and
``benchmarks/observer_validation.py`` writes them as the detectability page's validation table, so
the page shows the numbers the checks produce, not numbers typed after a test run.

* On white noise the ideal linear observer of a known signal is the matched filter, with
  d' = ||s|| / sigma (Barrett and Myers, ch. 13); the channelized Hotelling observer with
  Laguerre-Gauss channels matched to the signal's width, and the non-prewhitening observer
  without an eye filter, must reach it, and AUC must equal Phi(d' / sqrt 2).
* No invertible linear filter changes the Hotelling observer's d' (processing adds no
  information).
* A signal inside a region the display window clips is lost to the observers of the displayed
  image, not to one of the image itself.
* On a water phantom with a column of vertebral bodies, projected and detected with quantum
  noise only, d' of a fracture grows with its grade, and four times the dose doubles it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xvertnet.evaluation import observer as obs

#: Attenuation (1/mm) of the phantom's bone, disc and water, and its voxel spacing (mm).
BONE, DISC, WATER = 0.03, 0.021, 0.02
PHANTOM_SPACING = (1.5, 1.5, 1.5)
#: The phantom's dose for the dose check: d' of a few units (its exposure control aims at a lung, not this water).
PHANTOM_DOSE = 2e-4


@dataclass(frozen=True)
class Check:
    """One known-answer check: what it is, the answer expected and the one measured (text), and the numbers."""

    name: str
    expected: str
    measured: str
    values: dict


def gaussian_signal(size: int, amplitude: float, width: float) -> np.ndarray:
    x, y = obs._grid(size)
    return amplitude * np.exp(-(x**2 + y**2) / (2.0 * width**2))


def white_noise_study(size=24, count=4000, amplitude=0.5, width=2.5, seed=1):
    """A Gaussian signal in white noise of unit variance: (signal, present, absent, fold of each image)."""
    rng = np.random.default_rng(seed)
    signal = gaussian_signal(size, amplitude, width)
    present = rng.standard_normal((count, size, size)) + signal
    absent = rng.standard_normal((count, size, size))
    fold = np.arange(count) % 2
    return signal, present, absent, fold


def _against_the_matched_filter(name: str, analytic_label: str, signal, scores) -> Check:
    """An observer's d' and AUC on white noise against the matched filter's d' = ||s|| / sigma (sigma = 1)."""
    analytic = float(np.linalg.norm(signal))
    dprime, auc = obs.dprime(*scores), obs.auc(*scores)
    return Check(
        name,
        f"{analytic_label} = {analytic:.3f}; AUC = Phi(measured d'/sqrt 2) = {obs.auc_from_dprime(dprime):.4f}",
        f"d' {dprime:.3f} ({(dprime / analytic - 1) * 100:+.1f} %); AUC {auc:.4f}",
        {"analytic": analytic, "dprime": dprime, "auc": auc, "auc_from_dprime": obs.auc_from_dprime(dprime)},
    )


def cho_on_white_noise() -> Check:
    signal, present, absent, fold = white_noise_study()
    channels = obs.laguerre_gauss_channels(signal.shape[0], 2.5 * np.sqrt(2.0 * np.pi), 6)  # a^2 = 2 pi w^2
    flat_p, flat_a = present.reshape(len(present), -1), absent.reshape(len(absent), -1)
    scores = obs.two_fold_scores(flat_p @ channels.T, flat_a @ channels.T, fold, fold, obs.hotelling_scores)
    name = "CHO (Laguerre-Gauss channels, no internal noise) on white noise, Gaussian signal"
    return _against_the_matched_filter(name, "d' = ||s||/sigma", signal, scores)


def npw_on_white_noise() -> Check:
    signal, present, absent, fold = white_noise_study(size=16, count=8000)
    scores = obs.two_fold_scores(present, absent, fold, fold, lambda tp, ta, test: obs.npwe_scores(tp, ta, test, None))
    return _against_the_matched_filter("NPW (no eye filter) on white noise, the same signal", "d'", signal, scores)


def hotelling_under_an_invertible_filter() -> Check:
    """Hotelling (all pixels) on correlated noise before and after an invertible sharpening filter."""
    _, present, absent, fold = white_noise_study(size=10, count=3000, amplitude=0.6, width=1.5)
    # correlated noise first, so a filter could matter to an observer that ignores the noise's correlations
    kernel = np.fft.fft2(np.pad(np.ones((3, 3)) / 9.0, ((0, 7), (0, 7))))

    def blur(images):
        return np.real(np.fft.ifft2(np.fft.fft2(images) * (0.3 + kernel)))

    def sharpen(images):  # the inverse of blur
        return np.real(np.fft.ifft2(np.fft.fft2(images) / (0.3 + kernel)))

    present, absent = blur(present), blur(absent)
    groups = np.zeros(len(present))
    resamples = obs.bootstrap_indices(groups, groups, 200, 0)

    def ideal(p_images, a_images):
        def flat(images):
            return images.reshape(len(images), -1)

        return obs.two_fold_scores(flat(p_images), flat(a_images), fold, fold, obs.hotelling_scores)

    before = obs.summarise(*ideal(present, absent), resamples)
    after = obs.summarise(*ideal(sharpen(present), sharpen(absent)), resamples)
    npw = obs.dprime(
        *obs.two_fold_scores(present, absent, fold, fold, lambda tp, ta, test: obs.npwe_scores(tp, ta, test, None))
    )
    width = before["dprime_high"] - before["dprime_low"]
    return Check(
        "Hotelling (all pixels) before and after an invertible sharpening filter",
        "equal (within a tenth of the 95 % interval); NPW, a linear observer too, not above it (0.05 allowed)",
        f"d' {before['dprime']:.3f} and {after['dprime']:.3f} (interval width {width:.3f}); NPW {npw:.3f}",
        {"before": before["dprime"], "after": after["dprime"], "interval_width": width, "npw": npw},
    )


def display_clipping() -> Check:
    """A signal in the brightest percent of the image: clipped by the reader's window, plain in the image itself."""
    rng = np.random.default_rng(3)
    size, count = 32, 400
    base = np.full((count, 96, 96), 0.3)
    base[:, 32:64, 32:64] = 3.0  # a dense region ...
    base[:, 44:52, 44:52] = 6.0  # ... with a denser core above the 99th percentile: clipped by the window
    signal = np.zeros((96, 96))
    signal[46:50, 46:50] = 0.6
    present = base + signal + 0.1 * rng.standard_normal(base.shape)
    absent = base + 0.1 * rng.standard_normal(base.shape)
    settings = obs.ObserverSettings(patch_px=size, internal_noise=0.0, channels="laguerre-gauss", laguerre_width_px=6.0)
    fold = np.arange(count) % 2

    def human(images):
        return np.stack([obs.patch(obs.displayed(image), (48, 48), size) for image in images])

    def raw(images):
        return np.stack([obs.patch(image, (48, 48), size) for image in images])

    shown = obs.observer_scores(human(present), human(absent), fold, fold, settings)
    image = obs.observer_scores(raw(present), raw(absent), fold, fold, settings)
    values = {
        "displayed_cho": obs.dprime(*shown["cho"]),
        "displayed_npwe": obs.dprime(*shown["npwe"]),
        "image_cho": obs.dprime(*image["cho"]),
    }
    return Check(
        "a signal clipped by the display window",
        "human-like d' on the display near 0 (below 0.5); d' on the image large (above 5)",
        f"display: cho {values['displayed_cho']:.2f}, npwe {values['displayed_npwe']:.2f}; image: cho "
        f"{values['image_cho']:.1f}",
        values,
    )


def phantom_spine():
    """A water cylinder with a column of box-shaped vertebral bodies (12 slices) and discs (4 slices); L-A-S axes.
    Returns (attenuation, level labels), level 1 the most superior."""
    shape = (64, 64, 64)
    lr, ap = np.mgrid[: shape[0], : shape[1]]
    body_of_water = ((lr - 32) ** 2 + (ap - 32) ** 2 < 30**2)[:, :, None] & np.ones(shape, bool)
    mu = np.where(body_of_water, WATER, 0.0).astype(np.float32)
    levels = np.zeros(shape, np.int16)
    column = (slice(24, 40), slice(16, 34))  # 24 mm wide, 27 mm deep, posterior half of the cylinder
    for level, top in enumerate(range(60, 8, -16), start=1):
        mu[column[0], column[1], top - 4 : top] = DISC
        mu[column[0], column[1], top - 16 : top - 4] = BONE
        levels[column[0], column[1], top - 16 : top - 4] = level
    return mu, levels


def phantom_dprime(kind: str, grade: int, dose: float, count: int = 1000) -> float:
    """d' of the non-prewhitening matched filter (the signal known exactly) for a fracture of level 2 of the phantom
    spine, on the detector's log signal with quantum noise only (no scatter, no blur, no anatomy)."""
    from xvertnet.demo.drr import Geometry, cone_sum, detector_grid, project
    from xvertnet.demo.xray_detector import Exposure, detect, incident_quanta
    from xvertnet.evaluation.fracture import Fracture, fracture_volume

    mu, levels = phantom_spine()
    geometry = Geometry(pixel_mm=1.0, source_detector_mm=1800.0)
    base, projected = project(mu, PHANTOM_SPACING, geometry, levels=levels)
    u, w, source_a, detector_a = detector_grid(mu.shape, PHANTOM_SPACING, geometry)
    rows, columns = np.nonzero(projected == 2)
    centre = (rows.mean(), columns.mean())
    exposure = Exposure(pixel_mm=1.0, scatter_fraction=0.0, mtf_sigma_mm=0.0, scintillator_sigma_mm=0.0)
    quanta = incident_quanta(base, exposure)
    box, values, _ = fracture_volume(mu, levels, Fracture(2, kind, grade))
    lesion = base + cone_sum(
        values - mu[box],
        PHANTOM_SPACING,
        u,
        w,
        source_a,
        detector_a - source_a,
        offset=[s.start for s in box],
        full_shape=mu.shape,
    )
    rng = np.random.default_rng([grade, int(dose * 1e6)] + ([1] if kind == "biconcave" else []))

    def shots(line):
        patches = [obs.patch(detect(line, exposure, rng, quanta=quanta * dose), centre, 24) for _ in range(count)]
        return np.stack(patches).reshape(count, -1)

    def mean(line):
        return obs.patch(detect(line, exposure, None, quanta=quanta * dose), centre, 24).ravel()

    template = mean(lesion) - mean(base)  # the known signal: the matched filter of white noise
    return obs.dprime(shots(lesion) @ template, shots(base) @ template)


def phantom_grade_and_dose(kind: str) -> Check:
    mild, moderate = phantom_dprime(kind, 1, PHANTOM_DOSE), phantom_dprime(kind, 2, PHANTOM_DOSE)
    moderate_4x = phantom_dprime(kind, 2, 4 * PHANTOM_DOSE)
    return Check(
        f"phantom spine, detector log signal, matched filter: {kind} grade 1, grade 2, grade 2 at four times the dose",
        "grade 2 > grade 1; four times the dose doubles d'",
        f"d' {mild:.2f}, {moderate:.2f}, {moderate_4x:.2f} (x{moderate_4x / moderate:.2f})",
        {"grade1": mild, "grade2": moderate, "grade2_4x": moderate_4x, "dose_ratio": moderate_4x / moderate},
    )


def all_checks() -> list[Check]:
    return [
        cho_on_white_noise(),
        npw_on_white_noise(),
        hotelling_under_an_invertible_filter(),
        display_clipping(),
        phantom_grade_and_dose("wedge"),
        phantom_grade_and_dose("biconcave"),
    ]


def checks_markdown(checks: list[Check]) -> str:
    """The checks as a Markdown table (a ``|`` inside a cell escaped)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| check | expected | measured |", "|---|---|---|"]
    lines += [f"| {cell(c.name)} | {cell(c.expected)} | {cell(c.measured)} |" for c in checks]
    return "\n".join(lines) + "\n"
