"""Benchmark of the WLS solvers (Eqs. 2-3): seconds, extra peak memory and accuracy.

Each measurement runs in a fresh process (multiprocessing 'spawn') so its peak
resident memory is its own: extra peak MB = ru_maxrss after the solve minus
ru_maxrss just before it (input built, modules imported). The input is the real
radiograph RG1_UNCR.dcm (pydicom-data) resampled to N x N; lambda 0.8, alpha 1.2,
eps 1e-4. Accuracy is PSNR against the exact 'amg' solution (data range 1).

    python benchmarks/wls.py                    # 512, 1024, 2048; spsolve skipped at 2048
    python benchmarks/wls.py --spsolve-2048     # include scipy's default spsolve at 2048 (~2 min, ~9 GB)
    python benchmarks/wls.py --sizes 512 --solvers fast amg direct spsolve
    python benchmarks/wls.py --input resized    # the whole radiograph resampled to N x N
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np
from process_peak import vm_hwm_mb


def _input(size: int, kind: str) -> tuple[np.ndarray, str]:
    """RG1_UNCR as an N x N input: a native-resolution centre crop, or the whole image resampled."""
    from skimage.transform import resize

    from xvertnet.demo.demo_data import real_radiograph_path
    from xvertnet.io.readers import read_image

    image = read_image(real_radiograph_path()).pixels.astype(np.float64)
    if kind == "crop" and size <= min(image.shape):
        top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
        return image[top : top + size, left : left + size], "centre crop"
    resized = resize(image, (size, size), order=1, anti_aliasing=size < min(image.shape), preserve_range=True)
    return resized, "whole image resampled"


def _measure(size: int, kind: str, solver: str, lam: float, out: str, queue) -> None:
    from xvertnet.preprocessing.wls import WlsParams, wls_smooth

    image, _ = _input(size, kind)
    params = WlsParams(lam=lam, solver=solver)
    wls_smooth(image[:16, :16], params)  # import and warm up the solver's modules
    before = vm_hwm_mb()
    start = time.perf_counter()
    result = wls_smooth(image, params)
    seconds = time.perf_counter() - start
    after = vm_hwm_mb()
    np.save(out, result)
    queue.put((seconds, after - before))


def measure(size: int, kind: str, solver: str, lam: float, folder: Path) -> tuple[float, float, np.ndarray]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    out = str(folder / f"{solver}_{size}.npy")
    process = context.Process(target=_measure, args=(size, kind, solver, lam, out, queue))
    process.start()
    seconds, extra_mb = queue.get()
    process.join()
    return seconds, extra_mb, np.load(out)


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    mse = float(np.mean((reference - test) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--solvers", nargs="+", default=["fast", "amg", "spsolve"])
    parser.add_argument("--lam", type=float, default=0.8)
    parser.add_argument("--spsolve-2048", action="store_true", help="also run scipy's default spsolve at 2048")
    parser.add_argument(
        "--input",
        choices=["crop", "resized"],
        default="crop",
        help="native-resolution centre crop of RG1_UNCR (resampled when it is smaller than N), or the whole image resampled",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown (a docs table) to this file")
    args = parser.parse_args()
    rows = []

    print(f"WLS solvers, lambda {args.lam}, alpha 1.2, eps 1e-4, input RG1_UNCR.dcm (1955 x 1841)")
    print(f"{'N':>5} {'solver':>8} {'seconds':>9} {'extra MB':>9} {'PSNR vs amg':>12} {'detail corr':>12}")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            results = {}
            for solver in args.solvers:
                if solver == "spsolve" and size >= 2048 and not args.spsolve_2048:
                    continue
                results[solver] = measure(size, args.input, solver, args.lam, Path(folder))
            reference = results.get("amg", (None, None, None))[2]
            image, kind = _input(size, args.input)
            print(f"{size:>5} input: {kind}")
            for solver, (seconds, extra_mb, smoothed) in results.items():
                if reference is None:
                    accuracy = correlation = "n/a"
                elif solver == "amg":
                    accuracy = correlation = "(reference)"
                else:
                    accuracy = f"{psnr(reference, smoothed):.1f} dB"
                    correlation = f"{np.corrcoef((image - reference).ravel(), (image - smoothed).ravel())[0, 1]:.4f}"
                print(f"{size:>5} {solver:>8} {seconds:>9.3f} {extra_mb:>9.0f} {accuracy:>12} {correlation:>12}")
                ratio = f"{seconds / results['fast'][0]:.0f}x" if "fast" in results and solver != "fast" else "–"
                rows.append(
                    f"| {size} | {kind} | `{solver}` | {seconds:.3f} | {extra_mb:.0f} | {accuracy} | {correlation} | {ratio} |"
                )
            if "fast" in results:
                for other in ("amg", "direct", "spsolve"):
                    if other in results:
                        print(f"{size:>5} speed ratio {other} / fast: {results[other][0] / results['fast'][0]:.0f}x")
    if args.markdown:
        from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

        header = [
            "| N | input | solver | seconds | extra peak MB | PSNR vs amg | detail correlation vs amg | time / fast's |",
            "|---|---|---|---|---|---|---|---|",
        ]
        note = (
            f"WLS of Eq. 2-3 (lambda {args.lam}, alpha 1.2, eps 1e-4) on RG1_UNCR.dcm (1955 x 1841); each solver in "
            "its own process, peak = the process's extra VmHWM; PSNR and the correlation of the detail layers against "
            "the exact `amg` solution."
        )
        write_run_table(args.markdown, benchmark_command(), "\n".join(header + rows) + "\n\n" + note)


if __name__ == "__main__":
    main()
