"""WLS (Eqs. 2-3): the exact solvers solve the system; the fast solver agrees with them."""

from __future__ import annotations

import numpy as np
import pytest

from xvertnet.errors import InvalidValueError
from xvertnet.io.readers import read_image
from xvertnet.preprocessing.tridiagonal import wls_1d_columns, wls_1d_rows
from xvertnet.preprocessing.wls import SOLVERS, WlsParams, relative_residual, smoothness_weights, wls_smooth, wls_system


def psnr(reference, test, data_range=1.0):
    return 10 * np.log10(data_range**2 / np.mean((reference - test) ** 2))


@pytest.fixture(scope="module")
def rg1_full(rg1_path):
    return read_image(rg1_path).pixels.astype(np.float64)


def test_system_on_a_hand_computed_2x2():
    image = np.array([[0.2, 0.4], [0.6, 0.8]])
    params = WlsParams(lam=0.5)
    log_image = np.log(image + 1e-4)
    wx = 1 / (np.abs(np.diff(log_image, axis=1)) ** 1.2 + 1e-4)  # edges (0,0)-(0,1) and (1,0)-(1,1)
    wy = 1 / (np.abs(np.diff(log_image, axis=0)) ** 1.2 + 1e-4)  # edges (0,0)-(1,0) and (0,1)-(1,1)
    a, b, c, d = 0.5 * wx[0, 0], 0.5 * wx[1, 0], 0.5 * wy[0, 0], 0.5 * wy[0, 1]
    expected = np.array(
        [
            [1 + a + c, -a, -c, 0],
            [-a, 1 + a + d, 0, -d],
            [-c, 0, 1 + b + c, -b],
            [0, -d, -b, 1 + b + d],
        ]
    )
    np.testing.assert_allclose(wls_system(image, params).toarray(), expected, rtol=1e-12)


def test_system_is_symmetric_and_keeps_constants():
    image = np.random.default_rng(0).random((9, 7))
    matrix = wls_system(image, WlsParams(lam=0.8))
    assert abs(matrix - matrix.T).max() < 1e-9
    np.testing.assert_allclose(matrix @ np.ones(63), np.ones(63), rtol=1e-12)


def test_weights_shapes_and_floor():
    w_x, w_y = smoothness_weights(np.zeros((4, 5)), alpha=1.2, eps=1e-4, log_floor=1e-4)
    assert w_x.shape == (4, 4) and w_y.shape == (3, 5)
    np.testing.assert_allclose(w_x, 1e4)  # flat: 1 / eps


def _dense_1d_wls(values, weights, lam):
    """(I + lam L_w) u = f for one system, built densely."""
    n = len(values)
    coupling = np.zeros(n + 1)
    coupling[1:n] = lam * weights
    matrix = np.diag(1 + coupling[:-1] + coupling[1:]) - np.diag(coupling[1:n], 1) - np.diag(coupling[1:n], -1)
    return np.linalg.solve(matrix, values)


def test_batched_1d_wls_matches_dense_solves_along_rows_and_columns():
    rng = np.random.default_rng(1)
    values = rng.random((70, 131))  # more columns than one parallel block, not a multiple of it
    along_x, along_y = rng.random((70, 130)) * 50, rng.random((69, 131)) * 50
    rows = wls_1d_rows(values, along_x, 0.7)
    columns = wls_1d_columns(values, along_y, 0.7)
    for r in range(70):
        np.testing.assert_allclose(rows[r], _dense_1d_wls(values[r], along_x[r], 0.7), rtol=1e-10)
    for c in range(131):
        np.testing.assert_allclose(columns[:, c], _dense_1d_wls(values[:, c], along_y[:, c], 0.7), rtol=1e-10)
    np.testing.assert_array_equal(wls_1d_columns(values.T, along_x.T, 0.7), rows.T)  # one algorithm both ways
    with pytest.raises(InvalidValueError, match="do not fit"):
        wls_1d_rows(values, along_y, 0.7)


@pytest.mark.parametrize("solver", ["amg", "direct"])
def test_exact_solvers_reach_a_relative_residual_below_1e6(rg1_full, solver):
    crop = rg1_full[600:856, 700:956]
    params = WlsParams(lam=0.8, solver=solver)
    assert relative_residual(crop, wls_smooth(crop, params), params) < 1e-6


@pytest.mark.parametrize("size", [512, 1024])
def test_fast_solver_agrees_with_exact_at_50_db_on_real_radiograph(rg1_full, size):
    top, left = (rg1_full.shape[0] - size) // 2, (rg1_full.shape[1] - size) // 2
    crop = rg1_full[top : top + size, left : left + size]
    exact = wls_smooth(crop, WlsParams(lam=0.8, solver="amg"))
    fast = wls_smooth(crop, WlsParams(lam=0.8, solver="fast"))
    assert psnr(exact, fast) >= 50.0
    detail_correlation = np.corrcoef((crop - exact).ravel(), (crop - fast).ravel())[0, 1]
    assert detail_correlation > 0.99


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("kind", ["flat", "step", "zeros"])
def test_degenerate_images_stay_finite(solver, kind):
    image = {"flat": np.full((32, 32), 0.37), "zeros": np.zeros((32, 32)), "step": np.zeros((32, 32))}[kind]
    if kind == "step":
        image[:, 16:] = 1.0
    smooth = wls_smooth(image, WlsParams(lam=1.0, solver=solver))
    assert np.isfinite(smooth).all()
    if kind in ("flat", "zeros"):
        np.testing.assert_allclose(smooth, image, atol=1e-6)
    else:  # the edge is kept: the weight across it is tiny, within each side it is huge
        assert smooth[:, :15].max() < 0.02 and smooth[:, 17:].min() > 0.98


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="lambda must be > 0"):
        WlsParams(lam=0)
    with pytest.raises(ValueError, match="unknown WLS solver 'magic'"):
        WlsParams(solver="magic")
    with pytest.raises(ValueError, match="2-D image"):
        wls_smooth(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        wls_smooth(np.full((4, 4), np.nan))
