"""Whole-image enhancement of a 2048 x 2048 radiograph: seconds and peak memory, fp32 and bf16.

The input is the real radiograph RG1_UNCR.dcm (pydicom-data) resampled to 2048 x 2048 and
written as a 16-bit PNG. Each (working height, precision) runs in a fresh process ('spawn'),
so its peak resident memory (VmHWM, everything the process ever held: Python, torch, the
model, the images) is its own. In it: the model set is loaded and warmed up on a small image
(torch and the compiled WLS kernels initialised), then `xvertnet enhance`'s computation runs
`--repeats` times on the 2048 x 2048 image:

* ``enhance``: the image in memory -> enhanced image (`xvertnet.model.whole_image.enhance_image`:
  canonical resize, burned-in labels hidden, preprocessing Eqs. 1-6, the network in tiles,
  the native-resolution map back to 2048 x 2048);
* ``file``: the same from the PNG on disk to a 16-bit PNG output (`enhance_file`), reading,
  the chain and writing included.

Working heights: the model set's canonical height (the shipped set: 512, as `xvertnet enhance`
runs it) and, with ``--full``, the chain applied at 2048 directly (25 tiles of 512).

    python benchmarks/whole_image.py                      # shipped model set, fp32 and bf16
    python benchmarks/whole_image.py --full               # also the chain at 2048
    python benchmarks/whole_image.py --models results/models/xvertnet
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

from process_peak import vm_hwm_mb

SIZE = 2048


def _measure(models: str | None, precision: str, full: bool, png: str, repeats: int, queue) -> None:
    import numpy as np

    from xvertnet.io.readers import read_image
    from xvertnet.model.inference import Chain, EnhanceSettings
    from xvertnet.model.whole_image import enhance_file, enhance_image, model_dirs

    settings = EnhanceSettings()
    folders = model_dirs(Path(models) if models else None)
    chain = Chain(folders, precision=precision)
    if full:
        chain.canonical_height = None  # the chain at the image's own height
    image = read_image(png).pixels
    small = np.ascontiguousarray(image[::8, ::8])
    enhance_image(chain, small, tile=settings.tile, overlap=settings.overlap)  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        enhanced, description = enhance_image(chain, image, tile=settings.tile, overlap=settings.overlap)
        seconds.append(time.perf_counter() - start)
    file_seconds = None
    if not full:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            enhance_file(folders, png, Path(folder) / "out.png", EnhanceSettings(precision=precision))
            file_seconds = time.perf_counter() - start
    working = description.get("native_resolution", {}).get("working_height", image.shape[0])
    queue.put(
        {
            "precision": precision,
            "working": working,
            "seconds": statistics.median(seconds),
            "file": file_seconds,
            "peak_mb": vm_hwm_mb(),
            "dtype": str(chain.dtype),
            "shape": enhanced.shape,
        }
    )


def _result_of(process, queue) -> dict:
    """The measuring process's result; if it dies without one (an error, or out of memory), the benchmark exits
    with its exit code."""
    import queue as queues

    while True:
        try:
            result = queue.get(timeout=5)
            break
        except queues.Empty:
            if process.is_alive():
                continue
            try:  # it may have put its result just before it ended
                result = queue.get(timeout=1)
                break
            except queues.Empty:
                print(
                    f"whole_image: the measuring process ended with code {process.exitcode} and no result",
                    file=sys.stderr,
                )
                sys.exit(process.exitcode or 1)
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="a model set (default: the set shipped with the package)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--full", action="store_true", help="also apply the chain at 2048 (no canonical resize)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown (a docs table) to this file")
    args = parser.parse_args()

    import numpy as np
    from skimage.transform import resize

    from xvertnet.demo.demo_data import real_radiograph_path
    from xvertnet.io.readers import read_image
    from xvertnet.io.writers import write_png16

    image = read_image(real_radiograph_path()).pixels.astype(np.float64)
    image = resize(image, (SIZE, SIZE), order=1, anti_aliasing=False, preserve_range=True)
    image = (image - image.min()) / (image.max() - image.min())
    context = multiprocessing.get_context("spawn")
    title = (
        f"RG1_UNCR resampled to {SIZE} x {SIZE}, model set {args.models or 'shipped'}, median of {args.repeats} runs"
    )
    rows = [
        "| working height | precision | autocast | enhance s | file -> file s | peak memory (process) |",
        "|---|---|---|---|---|---|",
    ]
    print(title)
    print("\n".join(rows))
    with tempfile.TemporaryDirectory() as folder:
        png = str(Path(folder) / "input.png")
        write_png16(png, image.astype(np.float32))
        for full in [False, True] if args.full else [False]:
            for precision in args.precisions:
                queue = context.Queue()
                process = context.Process(
                    target=_measure, args=(args.models, precision, full, png, args.repeats, queue)
                )
                process.start()
                result = _result_of(process, queue)
                assert result["shape"] == (SIZE, SIZE)
                file_seconds = "-" if result["file"] is None else f"{result['file']:.2f}"
                rows.append(
                    f"| {result['working']} | {precision} | {result['dtype']} | {result['seconds']:.2f} | {file_seconds} | "
                    f"{result['peak_mb'] / 1024:.2f} GiB |"
                )
                print(rows[-1], flush=True)
    if args.markdown:
        from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

        note = (
            f"{title} of the enhancement in memory (file -> file: one run, reading the PNG, loading the models and "
            "writing the result); each configuration in a fresh process; peak = its VmHWM in GiB."
        )
        write_run_table(args.markdown, benchmark_command(), "\n".join(rows) + "\n\n" + note)


if __name__ == "__main__":
    main()
