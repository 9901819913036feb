"""XVertNet preprocessing, Eqs. 1-6 (journal paper, Sec. 3.1), with numerical guards (docs/method.md).

For a crop X in [0, 1]:

    X_inv = mean(X) - X                         (Eq. 1)  inverted image
    g     = WLS(X)                              (Eqs. 2-3)
    E     = X_inv + g                           (Eq. 4)  combined image
    Xp    = X / E                               (Eq. 5)  preprocessed image
    Y     = Xp - WLS(Xp)                        (Eq. 6)  high-frequency components (HFC)

Guards the paper does not state, each a named parameter of :class:`PrepParams`:

* ``e_floor``: E approaches 0 where detail exceeds the image mean, so
  E is clamped to at least ``e_floor * mean(X)`` (identical wherever E > e_floor * mean).
* ``rescale_xp``: Xp (up to about 1 / e_floor) is min-max rescaled to [0, 1] before the
  second WLS and stored rescaled (the network's input).
* ``log_floor``: the log-luminance of the WLS weights is log(max(X, 0) + log_floor).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from xvertnet.errors import ConfigError, InvalidValueError
from xvertnet.preprocessing.wls import WlsParams, wls_smooth
from xvertnet.settings import FromConfig

#: E is clamped to at least this fraction of mean(X) (a numerical guard, docs/method.md).
DEFAULT_E_FLOOR = 0.1


@dataclasses.dataclass(frozen=True)
class PrepParams(FromConfig):
    """Preprocessing parameters (config section ``prep``): the WLS parameters plus the guards.

    ``figures_per_shard`` (Fig. 1-style panels the prep stage draws) does not change the
    data, so :meth:`record` leaves it out.
    """

    SECTION: ClassVar[str] = "prep"
    #: Config keys of the WLS parameters -> fields of :class:`WlsParams`.
    WLS_KEYS: ClassVar[dict[str, str]] = {
        "lambda": "lam",
        "alpha": "alpha",
        "eps": "eps",
        "log_floor": "log_floor",
        "solver": "solver",
        "rtol": "rtol",
        "fgs_iterations": "fgs_iterations",
        "fgs_lambda_factor": "fgs_lambda_factor",
    }

    wls: WlsParams = dataclasses.field(default_factory=lambda: WlsParams(lam=0.8))
    e_floor: float = DEFAULT_E_FLOOR
    rescale_xp: bool = True
    figures_per_shard: int = 256

    def __post_init__(self):
        if not 0.0 < self.e_floor < 1.0:
            raise InvalidValueError(f"e_floor must be in (0, 1), got {self.e_floor}")

    @classmethod
    def config_keys(cls) -> dict[str, str]:
        return {
            **{key: f"wls.{field}" for key, field in cls.WLS_KEYS.items()},
            "e_floor": "e_floor",
            "rescale_xp": "rescale_xp",
            "figures_per_shard": "figures_per_shard",
        }

    @classmethod
    def from_config(cls, section: dict | None) -> PrepParams:
        """From the flat config section ``prep`` (or a stored :meth:`record`)."""
        section = dict(section or {})
        unknown = sorted(set(section) - set(cls.config_keys()))
        if unknown:
            raise ConfigError(
                f"prep.{unknown[0]}", f"unknown key for PrepParams (known: {', '.join(sorted(cls.config_keys()))})"
            )
        defaults = cls()
        wls = {field: section[key] for key, field in cls.WLS_KEYS.items() if key in section}
        try:
            return cls(
                wls=dataclasses.replace(defaults.wls, **wls),
                e_floor=section.get("e_floor", defaults.e_floor),
                rescale_xp=section.get("rescale_xp", defaults.rescale_xp),
                figures_per_shard=section.get("figures_per_shard", defaults.figures_per_shard),
            )
        except (TypeError, ValueError) as error:
            raise ConfigError("prep", str(error)) from None

    def record(self) -> dict:
        """Flat dict of every parameter that shapes the data, for HDF5 attributes and logs (config keys)."""
        return {
            **{key: getattr(self.wls, field) for key, field in self.WLS_KEYS.items()},
            "e_floor": self.e_floor,
            "rescale_xp": self.rescale_xp,
        }


def inverted_image(image: np.ndarray) -> np.ndarray:
    """X_inv = mean(X) - X (Eq. 1)."""
    image = np.asarray(image, dtype=np.float64)
    return image.mean() - image


def combined_image(image: np.ndarray, smoothed: np.ndarray, *, e_floor: float = DEFAULT_E_FLOOR) -> np.ndarray:
    """E = X_inv + g (Eq. 4), clamped to at least ``e_floor * mean(X)`` (guard)."""
    image = np.asarray(image, dtype=np.float64)
    combined = inverted_image(image) + smoothed
    floor = e_floor * image.mean()
    if floor <= 0:  # an all-zero (or negative-mean) crop: no illumination to divide by
        return np.ones_like(combined)
    return np.maximum(combined, floor)


def preprocessed_image(
    image: np.ndarray, combined: np.ndarray, *, rescale: bool = True
) -> tuple[np.ndarray, tuple[float, float]]:
    """Xp = X / E (Eq. 5), min-max rescaled to [0, 1] when ``rescale``; returns (Xp, raw range)."""
    ratio = np.asarray(image, dtype=np.float64) / combined
    low, high = float(ratio.min()), float(ratio.max())
    if not rescale:
        return ratio, (low, high)
    if high <= low:
        return np.zeros_like(ratio), (low, high)
    return (ratio - low) / (high - low), (low, high)


def high_frequency_components(preprocessed: np.ndarray, params: WlsParams) -> np.ndarray:
    """HFC Y = Xp - WLS(Xp) (Eq. 6)."""
    preprocessed = np.asarray(preprocessed, dtype=np.float64)
    return preprocessed - wls_smooth(preprocessed, params)


def preprocess(image: np.ndarray, params: PrepParams | None = None) -> dict[str, np.ndarray | float]:
    """Run Eqs. 1-6 on one crop.

    Parameters
    ----------
    image : ndarray, (H, W)
        Crop X in [0, 1], bone bright.
    params : PrepParams, optional

    Returns
    -------
    dict
        float32 arrays ``X``, ``X_inv``, ``g``, ``E``, ``Xp``, ``Y``, and floats
        ``xp_raw_min``, ``xp_raw_max`` (Xp before rescaling) and ``e_clamped_fraction``
        (share of pixels where the E floor applied).
    """
    params = params or PrepParams()
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise InvalidValueError(f"expected a 2-D crop, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise InvalidValueError("crop contains NaN or Inf")
    smoothed = wls_smooth(image, params.wls)
    unclamped = inverted_image(image) + smoothed
    combined = combined_image(image, smoothed, e_floor=params.e_floor)
    xp, (low, high) = preprocessed_image(image, combined, rescale=params.rescale_xp)
    y = high_frequency_components(xp, params.wls)
    as32 = lambda array: array.astype(np.float32)  # noqa: E731
    return {
        "X": as32(image),
        "X_inv": as32(inverted_image(image)),
        "g": as32(smoothed),
        "E": as32(combined),
        "Xp": as32(xp),
        "Y": as32(y),
        "xp_raw_min": low,
        "xp_raw_max": high,
        "e_clamped_fraction": float(np.mean(unclamped < combined)),
    }
