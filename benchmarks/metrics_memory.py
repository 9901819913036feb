"""Peak memory of `xvertnet metrics` on whole images of growing size, each in its own process.

    python benchmarks/metrics_memory.py [--sizes 2048 4096 8000] [--markdown FILE]

Input: synthetic 12-bit PNGs (smooth anatomy-like background plus noise, fixed seed). Each size runs
`xvertnet metrics IMAGE --json` once in its own process; its peak is that process's maximum resident size
(its VmHWM), so Python, numpy and the image are counted. Above `metrics.max_pixels` the
measures run on the block mean; the JSON's `downsample` says by how much.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from process_peak import run_xvertnet


def synthetic_png(path: Path, size: int, seed: int = 0) -> None:
    from scipy import ndimage

    from xvertnet.io.writers import write_png16

    rng = np.random.default_rng(seed)
    coarse = ndimage.zoom(rng.random((16, 16)), size / 16, order=3)[:size, :size]
    image = np.clip(0.6 * coarse + 0.02 * rng.standard_normal((size, size)), 0, 1)
    # 12 bits of information in a 16-bit PNG
    write_png16(str(path), (np.round(image * 4095) / 4095).astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8000])
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown (a docs table) to this file")
    args = parser.parse_args()
    rows = [
        "| image | measured at (block mean) | peak memory | bytes per input pixel | seconds |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            png = Path(folder) / f"synthetic_{size}.png"
            synthetic_png(png, size)
            done, peak, seconds = run_xvertnet(
                ["metrics", str(png), "--json"],
                Path(folder) / "peak",
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"xvertnet metrics failed on {size} x {size} (exit {done.returncode})")
            result = json.loads(done.stdout)
            shape = result.get("measured_shape", [size, size])
            row = (
                f"| {size} x {size} | {shape[0]} x {shape[1]} (k = {result.get('downsample', 1)}) | "
                f"{peak / 2**30:.2f} GiB | {peak / size**2:.0f} B | {seconds:.1f} |"
            )
            print(row, flush=True)
            rows.append(row)
    if args.markdown:
        from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

        note = (
            "`xvertnet metrics IMAGE --json` on a synthetic 12-bit PNG, one process per size; peak = the process's "
            "maximum resident size (VmHWM); k: the side of the blocks averaged above metrics.max_pixels."
        )
        write_run_table(args.markdown, benchmark_command(), "\n".join(rows) + "\n\n" + note)


if __name__ == "__main__":
    main()
