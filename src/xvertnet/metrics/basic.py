"""Entropy, PSNR, SSIM (as MATLAB computes them) and Tenengrad contrast (TC)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def entropy(image: np.ndarray) -> float:
    """Shannon entropy (bits) of the 256-bin histogram of a 0-255 image (MATLAB ``entropy``)."""
    from skimage.measure import shannon_entropy

    return float(shannon_entropy(np.clip(np.round(image), 0, 255).astype(np.uint8)))


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB for 0-255 images (MATLAB ``psnr``)."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(
        peak_signal_noise_ratio(np.asarray(reference, np.float64), np.asarray(image, np.float64), data_range=255)
    )


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """SSIM for 0-255 images, MATLAB's settings: Gaussian window sigma 1.5, population covariance."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            np.asarray(reference, np.float64),
            np.asarray(image, np.float64),
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


#: The paper's TC values (0.01-0.2) suggest intensities scaled to [0, 1]: scale 1/255 of a 0-255 image.
DEFAULT_TC_SCALE = 1.0 / 255.0


def tenengrad(image: np.ndarray, *, intensity_scale: float = DEFAULT_TC_SCALE) -> float:
    """Tenengrad contrast: mean of Gx^2 + Gy^2, 3x3 Sobel, replicated borders, on ``image * intensity_scale``."""
    scaled = np.asarray(image, dtype=np.float64) * intensity_scale
    gx = ndimage.sobel(scaled, axis=1, mode="nearest")
    gy = ndimage.sobel(scaled, axis=0, mode="nearest")
    return float(np.mean(gx**2 + gy**2))
