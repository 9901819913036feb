"""Quality measures against MATLAB's published values (TID2013 images) and their expected properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from xvertnet.metrics import measure_all
from xvertnet.metrics.basic import entropy, psnr, ssim, tenengrad
from xvertnet.metrics.lpcsi import lpc_si
from xvertnet.metrics.matlab import imresize, rgb2gray
from xvertnet.metrics.natural_scene import brisque, niqe
from xvertnet.metrics.piqe import piqe
from xvertnet.metrics.task import vertebral_cnr, vertebral_edge_strength
from xvertnet.metrics.tmqi import structural_fidelity, tmqi

DATA = Path(__file__).parent / "data" / "iqa_calibration"
NAMES = ["I03", "I04", "I06", "I08", "I19"]
OFFICIAL = pd.read_csv(DATA / "results_official.csv").set_index("Method")


def _rgb(kind, name):
    return np.asarray(Image.open(DATA / kind / f"{name}.png"))


def _official(measure, name):
    return float(OFFICIAL.loc[measure, f"{name}.bmp"])


@pytest.mark.parametrize("name", NAMES)
def test_entropy_psnr_ssim_piqe_match_matlab(name):
    distorted, reference = _rgb("dist_dir", name), _rgb("ref_dir", name)
    grey, grey_reference = rgb2gray(distorted), rgb2gray(reference)
    assert entropy(grey) == pytest.approx(_official("entropy", name), abs=5e-5)
    assert psnr(distorted, reference) == pytest.approx(_official("psnr", name), abs=5e-3)  # MATLAB psnr on the RGB arrays
    assert ssim(grey, grey_reference) == pytest.approx(_official("ssim", name), abs=5e-5)
    assert piqe(grey) == pytest.approx(_official("piqe", name), abs=5e-3)


@pytest.mark.parametrize("name", NAMES)
def test_niqe_within_one_percent_of_matlab(name):
    assert niqe(rgb2gray(_rgb("dist_dir", name))) == pytest.approx(_official("niqe", name), rel=0.01)


def test_niqe_of_i19_hinges_on_flat_region_rounding():
    # I19 is dominated by flat compression blocks; keeping the rounding residue of their MSCN
    # coefficients (sign set by the summation order) moves NIQE by more than the 1 % tolerance.
    grey = rgb2gray(_rgb("dist_dir", "I19"))
    assert abs(niqe(grey, flat_residue=0.0) / _official("niqe", "I19") - 1) > 0.03


# BRISQUE on I19 is left out: the reference Python port (pyiqa) does not agree with the LIVE value
# either (66.84 vs 72.26, ResultsCalibra/calibration_summary.csv); we give 64.25, and 74.43 with
# flat residue removed: the SVR score is as unstable there as NIQE.
@pytest.mark.parametrize("name", ["I03", "I04", "I06", "I08"])
def test_brisque_live_model_within_half_a_point(name):
    assert brisque(rgb2gray(_rgb("dist_dir", name))) == pytest.approx(_official("brisque", name), abs=0.5)


def test_imresize_half_reproduces_linear_ramps_and_constants():
    # Output pixel i (1-based) of a 0.5 resize samples the input at u = 2 i - 0.5 (MATLAB's mapping);
    # the (stretched) cubic kernel reproduces a linear ramp exactly away from the borders.
    ramp = np.tile(np.arange(1, 33, dtype=float), (6, 1))
    resized = imresize(ramp, 0.5)
    assert resized.shape == (3, 16)
    np.testing.assert_allclose(resized[:, 3:-3], np.tile(2 * np.arange(4, 14) - 0.5, (3, 1)), atol=1e-9)
    np.testing.assert_allclose(imresize(np.full((8, 6), 7.0), 0.5), 7.0)


@pytest.fixture(scope="module")
def roi():
    grey = rgb2gray(_rgb("ref_dir", "I03")).astype(float)
    return grey[:, 100:390]  # 384 x 290


def test_lpc_si_falls_under_blur(roi):
    values = [lpc_si(ndimage.gaussian_filter(roi, sigma) if sigma else roi) for sigma in (0, 1, 2, 4)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert lpc_si(roi, sigma_onf=0.75) != pytest.approx(values[0], abs=1e-3)  # the parameter matters


def test_tmqi_against_itself_and_under_blur(roi):
    same = tmqi(roi, roi)
    blurred = tmqi(roi, ndimage.gaussian_filter(roi, 2))
    assert same["tmqi_s"] > blurred["tmqi_s"] and same["tmqi"] > blurred["tmqi"]
    # Against itself on the reference's own (2^32 - 1) scale, S is exactly 1 at every level.
    hdr = np.round((2.0**32 - 1) / (roi.max() - roi.min())) * (roi - roi.min())
    score, levels = structural_fidelity(roi, hdr)
    assert score == pytest.approx(1.0, abs=1e-12) and levels == pytest.approx([1.0] * 5, abs=1e-12)
    # Against the same image on 0-255 (how the pipeline uses it) the structure factor is still 1,
    # but the contrast-visibility term of the 2^32 reference saturates, so S is a little below 1.
    score, levels = structural_fidelity(roi, roi)
    assert 0.9 < score < 1.0 and len(levels) == 5
    assert 0.0 <= same["tmqi_n"] <= 1.0


def test_tenengrad_rises_with_contrast(roi):
    middle = roi.mean()
    low, high = middle + 0.5 * (roi - middle), roi
    assert tenengrad(high) == pytest.approx(4 * tenengrad(low), rel=1e-9)
    assert tenengrad(roi, intensity_scale=1.0) == pytest.approx(255**2 * tenengrad(roi))


def test_vertebral_measures_on_a_bright_bar():
    mask = np.zeros((100, 60), bool)
    mask[:, 20:40] = True
    image = np.where(mask, 0.7, 0.4) + np.random.default_rng(0).normal(0, 0.02, mask.shape)
    stretched = 0.5 + 2 * (image - 0.5)
    assert vertebral_cnr(image, mask) == pytest.approx(vertebral_cnr(stretched, mask))  # CNR: stretch-invariant
    assert vertebral_edge_strength(stretched, mask) == pytest.approx(2 * vertebral_edge_strength(image, mask))
    assert vertebral_cnr(image, mask) > 5


def test_all_measures_on_a_512x290_roi(roi):
    padded = np.pad(roi, ((0, 128), (0, 0)), mode="reflect")[:512, :290]
    timings = {}
    values = measure_all(padded, reference255=padded, clean255=padded, timings=timings)
    assert set(values) >= {"entropy", "tc", "lpc_si", "tmqi", "piqe", "brisque", "niqe", "psnr", "ssim"}
    assert all(np.isfinite(v) for v in values.values() if v != float("inf"))
    assert values["ssim"] == pytest.approx(1.0)
