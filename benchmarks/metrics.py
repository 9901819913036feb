"""Seconds per quality measure on one 512 x 290 ROI (the paper's evaluation size), in one run.

    python benchmarks/metrics.py [--repeats 5]

Input: a 512 x 290 strip of the real radiograph RG1_UNCR.dcm (pydicom-data), on 0-255;
TMQI uses the same ROI as its reference, PSNR/SSIM a blurred copy as the clean reference.
After the timed runs, one more untimed run under tracemalloc gives the peak memory the measures
allocate (numpy arrays included); the process's peak resident size is printed too.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
from scipy import ndimage


def main() -> None:
    from xvertnet.demo.demo_data import real_radiograph_path
    from xvertnet.io.readers import read_image
    from xvertnet.metrics import VertebraTask, measure_all, to_255

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    image = read_image(real_radiograph_path()).pixels
    top, left = image.shape[0] // 2 - 256, image.shape[1] // 2 - 145
    roi = to_255(image[top : top + 512, left : left + 290])
    clean = ndimage.gaussian_filter(roi, 1)
    mask = np.zeros(roi.shape, bool)
    mask[:, 100:190] = True
    twin = np.clip(roi + np.random.default_rng(0).normal(0.0, 2.0, roi.shape), 0, 255)  # another noise draw
    measure_all(roi, reference255=roi, clean255=clean, task=VertebraTask(mask, twin))  # warm-up
    totals: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(args.repeats):
        timings: dict[str, float] = {}
        measure_all(roi, reference255=roi, clean255=clean, task=VertebraTask(mask, twin), timings=timings)
        for name, seconds in timings.items():
            totals[name] = totals.get(name, 0.0) + seconds
    everything = (time.perf_counter() - start) / args.repeats
    print(f"ROI {roi.shape[0]} x {roi.shape[1]}, mean of {args.repeats} runs")
    for name, seconds in totals.items():
        print(f"{name:>10} {seconds / args.repeats:8.3f} s")
    print(f"{'all':>10} {everything:8.3f} s")
    tracemalloc.start()
    measure_all(roi, reference255=roi, clean255=clean, task=VertebraTask(mask, twin))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"peak memory of one run: {peak / 2**20:.1f} MiB allocated ({peak / roi.size:.0f} bytes per pixel); "
        f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB"
    )


if __name__ == "__main__":
    main()
