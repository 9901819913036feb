"""Seconds per evaluation ROI and per whole canonical image for every method, in one run.

Input: RG1_UNCR.dcm (pydicom-data) at canonical height 512 (482 wide) and a 256 x 145
evaluation ROI centred on it, the demo's sizes; whole images go through each method's
whole-image path (``enhance_whole``), as the enhance stage runs them. Learned baselines are first trained with
their default (CPU-sized) settings on 30 random 256 x 256 crops of the same image; their
training time is printed separately. XVertNet needs trained models: pass --models.
``--short-training`` trains every learned method for a few steps only (their enhancement costs
the same; LED samples from the start fraction the demo's training chose, 0.5): for timing
enhancement, not training.

    python benchmarks/methods.py
    python benchmarks/methods.py --short-training --methods lut-mapping led srcnn vdsr vdsr-dehaze   # timing only
    python benchmarks/methods.py --models results/models/xvertnet-paper/iter1 results/models/xvertnet-paper/iter2 --repeats 5
    python benchmarks/methods.py --models ... --markdown results/benchmarks/methods.md   # the docs' table (make docs-tables)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

#: Step counts of --short-training (keys of each method's defaults).
SHORT_TRAINING = {
    "zerodce": {"steps": 10},
    "madmad": {"steps": 10},
    "lut-mapping": {"steps": 10},
    "lut-mapping-bone": {"steps": 10},
    "srcnn": {"steps": 10},
    "vdsr": {"steps": 10},
    "vdsr-dehaze": {"steps": 10, "dehaze_steps": 10},
    "led": {"gan_steps": 5, "diffusion_steps": 10, "validate_every": 5, "start_fraction": 0.5},
}


def main() -> None:
    from xvertnet.demo.demo_data import real_radiograph_path
    from xvertnet.io.readers import read_image
    from xvertnet.methods import REGISTRY, get_method
    from xvertnet.preprocessing.spine_location import to_canonical

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", nargs="+", default=sorted(name for name in REGISTRY if not name.startswith("xvertnet"))
    )
    parser.add_argument("--models", nargs="*", type=Path, default=[], help="XVertNet iteration directories")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--short-training", action="store_true", help="a few training steps per method (enhancement timing only)"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="also write the table here, headed by the command, commit and machine (the docs copy it: make docs-tables)",
    )
    args = parser.parse_args()

    canonical, _ = to_canonical(read_image(real_radiograph_path()).pixels, 512)
    roi = canonical[128:384, 168:313]
    rng = np.random.default_rng(0)
    crops = [
        canonical[t : t + 256, left : left + 256] for t, left in zip(rng.integers(0, 256, 30), rng.integers(0, 226, 30))
    ]
    methods = {}
    print(f"{'method':>10} {'train s':>8} {'s / ROI 256x145':>16} {'s / whole 512x482':>18}")
    rows = ["| method | training (s) | s / ROI 256 x 145 | s / whole 512 x 482 |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        for name in args.methods:
            method, train_seconds = get_method(name, SHORT_TRAINING.get(name) if args.short_training else None), 0.0
            if method.trainable:
                start = time.perf_counter()
                method.fit(
                    [(c, c) for c in crops] if method.training_target else crops, Path(folder) / name
                )  # pairs: timing only
                train_seconds = time.perf_counter() - start
            methods[name] = (method, train_seconds, method.whole_images and method.enhance_whole)
        if args.models:
            from xvertnet.model.inference import Chain

            chain = Chain(args.models)
            run = lambda image: chain.run(image, tile=512)  # noqa: E731
            methods["xvertnet"] = (run, 0.0, run)
        for name, (method, train_seconds, whole) in methods.items():
            method(roi)  # warm-up
            start = time.perf_counter()
            for _ in range(args.repeats):
                method(roi)
            per_roi = (time.perf_counter() - start) / args.repeats
            per_whole = float("nan")
            if whole:  # the method's whole-image path (tiling, burned-in labels), as the enhance stage runs it
                start = time.perf_counter()
                whole(canonical)
                per_whole = time.perf_counter() - start
            print(f"{name:>10} {train_seconds:>8.1f} {per_roi:>16.3f} {per_whole:>18.3f}", flush=True)
            trained = f"{train_seconds:.1f}" if train_seconds else "–"
            whole_text = f"{per_whole:.3f}" if np.isfinite(per_whole) else "–"
            rows.append(f"| `{name}` | {trained} | {per_roi:.3f} | {whole_text} |")
    if args.markdown:
        from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

        note = (
            f"RG1_UNCR at canonical height 512; mean of {args.repeats} runs after a warm-up; learned baselines trained "
            + ("for a few steps only (timing of enhancement)" if args.short_training else "with their default settings")
            + " on 30 random 256 x 256 crops of the same image; xvertnet: the chain of the --models given."
        )
        write_run_table(args.markdown, benchmark_command(), "\n".join(rows) + "\n\n" + note)


if __name__ == "__main__":
    main()
