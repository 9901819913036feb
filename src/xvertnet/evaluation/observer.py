"""Model observers: how detectable a known signal is in a set of images, as a figure of merit for processing.

A task-based assessment asks whether an observer can tell images with a lesion (signal present)
from images without (signal absent), at a location known exactly (Barrett and Myers,
*Foundations of Image Science*, ch. 13-14; ICRU Report 54). Three linear observers score a
square patch g around the location; each computes a template w from *training* images and a
scalar t = w^T g (or of channel outputs) for every *test* image, never the images its template
was made from:

* **Hotelling** (the ideal linear observer; ``hotelling``): w = S^-1 (<g|present> - <g|absent>),
  S the mean of the two class covariances. It uses every pixel and the noise's full covariance,
  so no invertible linear filter can change its d': processing cannot create information.
  It needs far more images than pixels; :func:`hotelling_scores` is for small patches.
* **Channelized Hotelling** (``cho``, Myers and Barrett 1987): the same on a few channel outputs
  v = U^T g. Channels limit what the observer can use, as the visual system's spatial-frequency
  channels do: Laguerre-Gauss channels (rotationally symmetric; efficient for round signals) or
  Gabor channels (octave bands, four orientations, two phases: human-like, and able to see the
  horizontal endplate of a fracture).
* **Non-prewhitening with an eye filter** (``npwe``, Burgess 1994): w = E^T E (<g|present> -
  <g|absent>), E the contrast sensitivity of the eye, E(f) = f^1.3 exp(-c f^2) with its peak at
  ``eye_peak_cpd`` cycles per degree for an image shown at ``display_pixel_mm`` per pixel and
  read from ``viewing_distance_mm``. It ignores the noise's correlations, as humans largely do.

**Internal noise** (the reader's own noise, Burgess and Colborne 1988): each human-like observer's
test score carries independent Gaussian noise of variance ``internal_noise`` times the variance of
its external decision variable (measured on its training images), drawn with a fixed seed, the same
draws for every method. Proportional internal noise at the decision stage lowers d' by about
1 / sqrt(1 + ``internal_noise``) and widens the intervals, as a reader's inconsistency does; it does not
reorder methods. (Channel-wise internal noise proportional to each channel's variance, the other
common model, is not used: with anatomical backgrounds the channels' variance is mostly anatomy the
Hotelling template cancels, and noise of that size swamps it.)

**Figures of merit.** AUC is the Wilcoxon-Mann-Whitney statistic of the test scores (the area under
the ROC curve); d' = (mean_present - mean_absent) / sqrt((var_present + var_absent) / 2). For
Gaussian scores of equal variance AUC = Phi(d' / sqrt 2). Confidence intervals (95 %) come from a
two-level bootstrap: groups (patients) resampled with replacement, then the present and the
absent images within each chosen group; paired differences between two methods use the same
resamples for both (the same cases were enhanced by each), and their two-sided p-value is twice
the smaller tail of the bootstrap distribution of the difference.

**Display.** A human reads a displayed image: :func:`displayed` maps an image to 8 bits through one
window (its own 1st-99th percentile, values outside clipped), as the project's displayed measures
do. The ideal observers are run on the images themselves; the human-like ones on what is shown.

Why written here: the maintained observer toolkits (iQ-metrics, the FDA's ``iMRMC`` for reader
studies, MATLAB's ``IQmodelo``) are MATLAB, Java or R; the statistics are a few lines of NumPy.
Validated in ``tests/evaluation/test_observer.py``: on white Gaussian noise with a Gaussian signal, d' of the
channelized Hotelling and the non-prewhitening observers equals ||s|| / sigma within 5 % and AUC
equals Phi(d' / sqrt 2); an invertible filter leaves the Hotelling observer's d' unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
from scipy import special, stats

from xvertnet.errors import InvalidValueError
from xvertnet.settings import FromConfig

OBSERVERS = ("cho", "npwe")


@dataclasses.dataclass(frozen=True)
class ObserverSettings(FromConfig):
    """The model observers' settings (config section ``observer``; module docstring)."""

    SECTION: ClassVar[str] = "observer"

    #: Side of the square patch around the signal location, pixels.
    patch_px: int = 64
    #: ``gabor`` or ``laguerre-gauss``.
    channels: str = "gabor"
    #: Gabor: centre frequencies, cycles per pixel (octaves); Laguerre-Gauss: the count and the Gaussian width (px).
    gabor_frequencies: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8)
    laguerre_count: int = 6
    laguerre_width_px: float = 14.0
    #: Internal noise variance in the decision variable, as a share of its external variance (module docstring).
    internal_noise: float = 1.0
    eye_peak_cpd: float = 4.0
    viewing_distance_mm: float = 500.0
    #: Size of one image pixel on the screen, mm (a 0.7 mm radiograph fitted to a 3-megapixel monitor: about 0.5).
    display_pixel_mm: float = 0.5
    bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self):
        if self.channels not in ("gabor", "laguerre-gauss"):
            raise InvalidValueError(f"observer channels must be 'gabor' or 'laguerre-gauss', got '{self.channels}'")
        if self.patch_px < 8:
            raise InvalidValueError(f"observer patch_px must be at least 8, got {self.patch_px}")
        if self.internal_noise < 0:
            raise InvalidValueError(f"observer internal_noise must not be negative, got {self.internal_noise}")

    def channel_matrix(self) -> np.ndarray:
        """The channels as rows of a (count, patch_px**2) matrix."""
        if self.channels == "gabor":
            return gabor_channels(self.patch_px, self.gabor_frequencies)
        return laguerre_gauss_channels(self.patch_px, self.laguerre_width_px, self.laguerre_count)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    centre = (size - 1) / 2.0
    y, x = np.mgrid[:size, :size].astype(np.float64)
    return x - centre, y - centre


def laguerre_gauss_channels(size: int, width_px: float, count: int) -> np.ndarray:
    """Laguerre-Gauss channels u_n(r) = sqrt(2) / a exp(-pi r^2 / a^2) L_n(2 pi r^2 / a^2), n < ``count``, a = ``width_px``."""
    x, y = _grid(size)
    g = 2.0 * np.pi * (x**2 + y**2) / width_px**2
    return np.stack(
        [(np.sqrt(2.0) / width_px * np.exp(-g / 2.0) * special.eval_laguerre(n, g)).ravel() for n in range(count)]
    )


def gabor_channels(size: int, frequencies, orientations: int = 4) -> np.ndarray:
    """Gabor channels: for each centre frequency f (cycles/px) an octave-wide Gaussian envelope (sigma = 0.375 / f,
    about one octave of bandwidth), ``orientations`` directions and two phases (even and odd); unit norm."""
    x, y = _grid(size)
    rows = []
    for frequency in frequencies:
        sigma = 0.375 / frequency
        envelope = np.exp(-(x**2 + y**2) / (2.0 * sigma**2))
        for k in range(orientations):
            theta = np.pi * k / orientations
            along = x * np.cos(theta) + y * np.sin(theta)
            for phase in (0.0, np.pi / 2.0):
                channel = envelope * np.cos(2.0 * np.pi * frequency * along + phase)
                rows.append((channel / np.linalg.norm(channel)).ravel())
    return np.stack(rows)


def eye_filter(size: int, settings: ObserverSettings) -> np.ndarray:
    """The eye's contrast sensitivity E(f) = f^1.3 exp(-c f^2) on the patch's FFT grid (peak 1 at ``eye_peak_cpd``)."""
    mm_per_degree = settings.viewing_distance_mm * np.tan(np.deg2rad(1.0))
    frequencies = np.fft.fftfreq(size)  # cycles per pixel
    fx, fy = np.meshgrid(frequencies, frequencies)
    cpd = np.hypot(fx, fy) / settings.display_pixel_mm * mm_per_degree
    c = 1.3 / (2.0 * settings.eye_peak_cpd**2)  # dE/df = 0 at the peak
    response = cpd**1.3 * np.exp(-c * cpd**2)
    return response / (settings.eye_peak_cpd**1.3 * np.exp(-c * settings.eye_peak_cpd**2))


def displayed(image: np.ndarray) -> np.ndarray:
    """What a reader sees: the image through one window (its 1st-99th percentile, clipped), in 8-bit steps, in [0, 1]."""
    from xvertnet.metrics.displayed import display

    return np.round(display(image) * 255.0) / 255.0


def patch(image: np.ndarray, centre, size: int) -> np.ndarray:
    """The ``size`` x ``size`` patch of ``image`` centred on ``centre`` (row, column), edge-padded where it leaves the image."""
    image = np.asarray(image, dtype=np.float64)
    top, left = int(round(centre[0])) - size // 2, int(round(centre[1])) - size // 2
    rows = np.clip(np.arange(top, top + size), 0, image.shape[0] - 1)
    columns = np.clip(np.arange(left, left + size), 0, image.shape[1] - 1)
    return image[np.ix_(rows, columns)]


def hotelling_scores(train_present: np.ndarray, train_absent: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Hotelling scores of ``test`` (rows: samples of the features, pixels or channel outputs) with the template from
    the training sets."""
    difference = train_present.mean(axis=0) - train_absent.mean(axis=0)
    covariance = np.atleast_2d(0.5 * (np.cov(train_present, rowvar=False) + np.cov(train_absent, rowvar=False)))
    return test @ np.linalg.lstsq(covariance, difference, rcond=None)[0]


def npwe_scores(
    train_present: np.ndarray, train_absent: np.ndarray, test: np.ndarray, eye: np.ndarray | None
) -> np.ndarray:
    """Non-prewhitening scores of ``test`` patches (N, size, size): template E^T E times the mean difference
    (``eye`` None: the plain non-prewhitening matched filter)."""
    difference = train_present.mean(axis=0) - train_absent.mean(axis=0)
    template = difference if eye is None else np.real(np.fft.ifft2(np.fft.fft2(difference) * eye**2))
    return test.reshape(len(test), -1) @ template.ravel()


def auc(present: np.ndarray, absent: np.ndarray) -> float:
    """Area under the ROC curve: the Wilcoxon-Mann-Whitney statistic, ties counted a half."""
    if len(present) == 0 or len(absent) == 0:
        return float("nan")
    ranks = stats.rankdata(np.concatenate([present, absent]))
    return float((ranks[: len(present)].sum() - len(present) * (len(present) + 1) / 2.0) / (len(present) * len(absent)))


def dprime(present: np.ndarray, absent: np.ndarray) -> float:
    """Detectability index d' of two score sets (module docstring)."""
    spread = np.sqrt(0.5 * (np.var(present, ddof=1) + np.var(absent, ddof=1)))
    return float((np.mean(present) - np.mean(absent)) / spread) if spread > 0 else float("nan")


def auc_from_dprime(value: float) -> float:
    """AUC of Gaussian scores of equal variance with detectability ``value``: Phi(d' / sqrt 2)."""
    return float(stats.norm.cdf(value / np.sqrt(2.0)))


def two_fold_scores(
    features_present: np.ndarray, features_absent: np.ndarray, fold_present: np.ndarray, fold_absent: np.ndarray, score
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of every sample from a template trained on the other fold (folds 0 and 1: separate realisations).
    ``score(train_present, train_absent, test)`` returns the test scores. The two folds' scores are pooled after
    each is centred between its training classes' mean scores and divided by their pooled standard deviation."""
    present_scores = np.empty(len(features_present))
    absent_scores = np.empty(len(features_absent))
    for fold in (0, 1):
        train_p, train_a = features_present[fold_present != fold], features_absent[fold_absent != fold]
        test_p, test_a = fold_present == fold, fold_absent == fold
        if not (len(train_p) > 1 and len(train_a) > 1):
            raise InvalidValueError("observer: each fold needs at least two present and two absent training images")
        both = score(
            train_p, train_a, np.concatenate([train_p, train_a, features_present[test_p], features_absent[test_a]])
        )
        on_p, on_a, both = (
            both[: len(train_p)],
            both[len(train_p) : len(train_p) + len(train_a)],
            both[len(train_p) + len(train_a) :],
        )
        # each fold's template has its own scale: scores in units of its training separation, centred between the classes
        centre = 0.5 * (on_p.mean() + on_a.mean())
        spread = np.sqrt(0.5 * (on_p.var(ddof=1) + on_a.var(ddof=1))) or 1.0
        both = (both - centre) / spread
        present_scores[test_p], absent_scores[test_a] = both[: test_p.sum()], both[test_p.sum() :]
    return present_scores, absent_scores


def observer_scores(
    patches_present: np.ndarray, patches_absent: np.ndarray, fold_present, fold_absent, settings: ObserverSettings
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Test scores (present, absent) of every human-like observer (``cho``, ``npwe``) on displayed patches (N, s, s)."""
    size = patches_present.shape[-1]
    channels = (
        settings.channel_matrix()
        if size == settings.patch_px
        else dataclasses.replace(settings, patch_px=size).channel_matrix()
    )
    flat_p, flat_a = patches_present.reshape(len(patches_present), -1), patches_absent.reshape(len(patches_absent), -1)
    eye = eye_filter(size, settings)
    fold_present, fold_absent = np.asarray(fold_present), np.asarray(fold_absent)
    found = {
        "cho": two_fold_scores(flat_p @ channels.T, flat_a @ channels.T, fold_present, fold_absent, hotelling_scores),
        "npwe": two_fold_scores(
            patches_present, patches_absent, fold_present, fold_absent, lambda p, a, t: npwe_scores(p, a, t, eye)
        ),
    }
    if settings.internal_noise > 0:  # scores are in units of the training spread: the variance is internal_noise
        rng = np.random.default_rng(settings.seed)
        spread = np.sqrt(settings.internal_noise)
        found = {
            name: (p + spread * rng.standard_normal(len(p)), a + spread * rng.standard_normal(len(a)))
            for name, (p, a) in found.items()
        }
    return found


def bootstrap_indices(groups_present, groups_absent, repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two-level bootstrap resamples (module docstring): index arrays into the present and absent samples."""
    groups_present, groups_absent = np.asarray(groups_present), np.asarray(groups_absent)
    names = np.unique(np.concatenate([groups_present, groups_absent]))
    by_group = {name: (np.flatnonzero(groups_present == name), np.flatnonzero(groups_absent == name)) for name in names}
    rng = np.random.default_rng(seed)
    resamples = []
    for _ in range(repeats):
        chosen = rng.choice(names, size=len(names), replace=True)
        present = [
            rng.choice(by_group[name][0], size=len(by_group[name][0])) for name in chosen if len(by_group[name][0])
        ]
        absent = [
            rng.choice(by_group[name][1], size=len(by_group[name][1])) for name in chosen if len(by_group[name][1])
        ]
        if present and absent:
            resamples.append((np.concatenate(present), np.concatenate(absent)))
    return resamples


def summarise(present: np.ndarray, absent: np.ndarray, resamples) -> dict[str, float]:
    """AUC and d' with their 95 % bootstrap intervals."""
    row = {
        "auc": auc(present, absent),
        "dprime": dprime(present, absent),
        "n_present": len(present),
        "n_absent": len(absent),
    }
    for name, measure in (("auc", auc), ("dprime", dprime)):
        values = np.array([measure(present[p], absent[a]) for p, a in resamples])
        values = values[np.isfinite(values)]
        row[f"{name}_low"], row[f"{name}_high"] = (
            (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))
            if len(values)
            else (float("nan"), float("nan"))
        )
    return row


def paired_difference(scores_a, scores_b, resamples, measure=auc) -> dict[str, float]:
    """``measure`` of method a minus method b on the same cases: the difference, its 95 % interval and p-value."""
    (pa, aa), (pb, ab) = scores_a, scores_b
    values = np.array([measure(pa[p], aa[a]) - measure(pb[p], ab[a]) for p, a in resamples])
    values = values[np.isfinite(values)]
    if not len(values):
        return {"difference": float("nan"), "low": float("nan"), "high": float("nan"), "p": float("nan")}
    p = min(1.0, 2.0 * min((values <= 0).mean(), (values >= 0).mean()))
    return {
        "difference": measure(pa, aa) - measure(pb, ab),
        "low": float(np.percentile(values, 2.5)),
        "high": float(np.percentile(values, 97.5)),
        "p": float(p),
    }
