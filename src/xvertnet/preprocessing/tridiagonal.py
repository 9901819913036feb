"""Batched 1-D WLS solves, the kernel of the fast global smoother (Min et al. 2014; XVertNet Eq. 2).

Every row (or every column) of an image is its own tridiagonal system

    (I + lam L_w) u = f,   L_w the 1-D Laplacian weighted on each edge,

i.e. for unknown i: -lam w[i-1] u[i-1] + (1 + lam w[i-1] + lam w[i]) u[i] - lam w[i] u[i+1] = f[i]
(w[-1] = w[N-1] = 0 at the ends). The systems are symmetric and strictly diagonally dominant,
so the Thomas algorithm (Gaussian elimination without pivoting) is stable.

Compiled with numba (``cache=True``: compiled once per machine, then loaded from
``__pycache__``) because neither numpy nor LAPACK gets near memory speed here:
a Thomas sweep vectorised over the batch in numpy costs ~N Python-level steps, and
LAPACK's ``ptsv``/``gtsv`` on the flattened systems are scalar loops over one system
(13-19 ms per 1024 x 1024 pass on these machines, against ~2 ms for these kernels).
Rows run in parallel over numba's threads; columns are swept row by row with the
innermost loop along the contiguous axis (SIMD), in parallel over one block of columns per thread.
Rows and columns are independent systems, so the result does not depend on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

from xvertnet.errors import InvalidValueError

#: Fewest columns per parallel block of the column sweep (the inner loop's contiguous run).
_MIN_COLUMN_BLOCK = 64


@numba.njit(cache=True, parallel=True)
def _solve_rows(values, weights, lam, out):  # pragma: no cover - compiled
    rows, count = values.shape
    for r in numba.prange(rows):
        scaled_upper = np.empty(count)
        previous_coupling = 0.0
        for i in range(count):
            coupling = lam * weights[r, i] if i < count - 1 else 0.0
            pivot = 1.0 + previous_coupling + coupling
            if i > 0:
                pivot += previous_coupling * scaled_upper[i - 1]
            inverse = 1.0 / pivot
            if i > 0:
                out[r, i] = (values[r, i] + previous_coupling * out[r, i - 1]) * inverse
            else:
                out[r, i] = values[r, i] * inverse
            scaled_upper[i] = -coupling * inverse
            previous_coupling = coupling
        for i in range(count - 2, -1, -1):
            out[r, i] -= scaled_upper[i] * out[r, i + 1]


@numba.njit(cache=True, parallel=True)
def _solve_columns(values, weights, lam, out, scaled_upper, block_width):  # pragma: no cover - compiled
    count, columns = values.shape
    blocks = (columns + block_width - 1) // block_width
    for block in numba.prange(blocks):
        first = block * block_width
        last = min(first + block_width, columns)
        for i in range(count):
            for j in range(first, last):
                previous_coupling = lam * weights[i - 1, j] if i > 0 else 0.0
                coupling = lam * weights[i, j] if i < count - 1 else 0.0
                pivot = 1.0 + previous_coupling + coupling
                if i > 0:
                    pivot += previous_coupling * scaled_upper[i - 1, j]
                inverse = 1.0 / pivot
                if i > 0:
                    out[i, j] = (values[i, j] + previous_coupling * out[i - 1, j]) * inverse
                else:
                    out[i, j] = values[i, j] * inverse
                scaled_upper[i, j] = -coupling * inverse
        for i in range(count - 2, -1, -1):
            for j in range(first, last):
                out[i, j] -= scaled_upper[i, j] * out[i + 1, j]


def _checked(values: np.ndarray, weights: np.ndarray, along_rows: bool, *buffers) -> tuple[np.ndarray, np.ndarray]:
    """float64 C-contiguous values and weights of fitting shapes; ``buffers`` (None or arrays) of the values' shape.

    The compiled kernels do not check bounds, so every shape is checked here."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if values.ndim != 2:
        raise InvalidValueError(f"expected a 2-D image, got shape {values.shape}")
    expected = (values.shape[0], values.shape[1] - 1) if along_rows else (values.shape[0] - 1, values.shape[1])
    if weights.shape != expected:
        raise InvalidValueError(f"weights of shape {weights.shape} do not fit values of shape {values.shape}")
    for buffer in buffers:
        if buffer is not None and (
            buffer.shape != values.shape or buffer.dtype != np.float64 or not buffer.flags.c_contiguous
        ):
            raise InvalidValueError(f"an output buffer must be float64, C-contiguous and of shape {values.shape}")
    return values, weights


def wls_1d_rows(values: np.ndarray, weights: np.ndarray, lam: float, out: np.ndarray | None = None) -> np.ndarray:
    """Solve (I + lam L_w) u = f along every row; ``values`` (H, W), ``weights`` (H, W - 1).

    ``out``: a float64 (H, W) array to write into (``values`` itself too); reusing one across calls
    saves the first-touch page faults of a new image-sized array.
    """
    values, weights = _checked(values, weights, True, out)
    out = np.empty_like(values) if out is None else out
    _solve_rows(values, weights, float(lam), out)
    return out


def wls_1d_columns(
    values: np.ndarray,
    weights: np.ndarray,
    lam: float,
    out: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
) -> np.ndarray:
    """Solve (I + lam L_w) u = f along every column; ``values`` (H, W), ``weights`` (H - 1, W).

    ``out`` and ``scratch``: float64 (H, W) arrays to reuse (as for :func:`wls_1d_rows`); ``scratch``
    must be neither ``values`` nor ``out``.
    """
    values, weights = _checked(values, weights, False, out, scratch)
    if scratch is not None and (
        np.shares_memory(scratch, values) or (out is not None and np.shares_memory(scratch, out))
    ):
        raise InvalidValueError("the scratch buffer must not share memory with the values or the output")
    out = np.empty_like(values) if out is None else out
    scratch = np.empty_like(values) if scratch is None else scratch
    # One block per thread: long contiguous runs keep the hardware prefetcher streaming (blocks of
    # 64 columns of a 2048-wide image, one 512-byte run per 16 kB row, ran 3-4x slower here).
    threads = numba.get_num_threads()
    block_width = max(_MIN_COLUMN_BLOCK, -(-values.shape[1] // threads))
    _solve_columns(values, weights, float(lam), out, scratch, block_width)
    return out
