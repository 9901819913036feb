"""Peak memory of each stage on one shard of full-size radiographs: ingest -> roi -> prep -> enhance-shard.

    python benchmarks/stage_memory.py                      # 16 images of 4020 x 4892, 16-bit (Montgomery's size)
    python benchmarks/stage_memory.py --images 4 --keep /tmp/run
    python benchmarks/stage_memory.py --stages ingest roi     # the two stages that read full-size images
    python benchmarks/stage_memory.py --markdown results/benchmarks/stage_memory_montgomery.md   # the docs' table

Input: synthetic 16-bit PNGs (12 bits used) of a radiograph-like scene: a smooth body, two darker
lung fields, a bright vertical spine bar with vertebra-like bands, and noise, all different (seed
per image). Each stage runs as the workflow runs it, the ``xvertnet <stage>`` command in its own
process (``--settings`` as the rules pass them); its peak resident memory is that process's
high-water mark ``VmHWM`` (``/proc/self/status``, read as it ends; not ``ru_maxrss``, which on Linux
also counts the parent's memory at the fork), wall time beside it. The ROI stage uses the paper's scale
(canonical height 2048, training ROIs 512 x 512, evaluation ROIs 512 x 290); ``enhance-shard``
runs the XVertNet chain with one randomly initialised iteration (memory does not depend on the
weights) of ``--base-width``/``--depth`` (default the demo's 8/3; the paper's 64/4 is far slower on
a CPU) on the evaluation ROIs and the canonical whole images (tiles of 512, overlap 64). Every
image goes to the test split so that enhance-shard takes them all. A stage is bounded by one image
when its peak does not grow with the shard: ``--images 1`` against the default shows it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from process_peak import run_xvertnet

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 4892, 4020
ROI = {"canonical_height": 2048, "train_size": [512, 512], "eval_size": [512, 290]}


def radiograph(seed: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A synthetic 12-bit chest radiograph, bone bright, as uint16, built a band of rows at a time."""
    rng = np.random.default_rng(seed)
    centre = width / 2 + rng.uniform(-0.03, 0.03) * width
    image = np.empty((height, width), np.uint16)
    x = np.arange(width, dtype=np.float32)
    for top in range(0, height, 512):
        y = np.arange(top, min(height, top + 512), dtype=np.float32)[:, None]
        body = np.exp(-(((x - centre) / (0.42 * width)) ** 6) - ((y - 0.55 * height) / (0.6 * height)) ** 6)
        lungs = sum(
            np.exp(
                -(((x - centre + side * 0.22 * width) / (0.14 * width)) ** 2)
                - ((y - 0.42 * height) / (0.22 * height)) ** 4
            )
            for side in (-1, 1)
        )
        spine = np.exp(-(((x - centre) / (0.035 * width)) ** 4)) * (
            0.85 + 0.15 * np.cos(2 * np.pi * y / (0.045 * height))
        )
        scene = 0.15 + 0.45 * body - 0.25 * lungs + 0.3 * spine + rng.normal(0, 0.01, (y.shape[0], width))
        image[top : top + y.shape[0]] = np.clip(np.rint(4095 * scene), 0, 4095).astype(np.uint16)
    return image


def random_model(folder: Path, *, base_width: int, depth: int, canonical_height: int) -> Path:
    """One XVertNet iteration with random weights, as a model directory the chain loads."""
    import torch

    from xvertnet.model.network import ModelConfig, XVertNet
    from xvertnet.preprocessing.preprocess import PrepParams
    from xvertnet.provenance import sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    config = ModelConfig(in_channels=1, base_width=base_width, depth=depth)
    torch.manual_seed(0)
    torch.save(XVertNet(config).state_dict(), folder / "model.pt")
    metadata = {
        "model": config.__dict__,
        "train": {"inputs": ["Xp"]},
        "iteration": 1,
        "data": {"prep": PrepParams().record(), "roi": {"canonical_height": canonical_height}},
        "model_sha256": sha256_file(folder / "model.pt"),
    }
    (folder / "model.json").write_text(json.dumps(metadata, indent=2))
    return folder


#: Runs the command, then writes the process's peak resident memory (kB) to the file named first.
def run_stage(arguments: list[str], log: Path) -> tuple[float, float]:
    """(peak resident GB, seconds) of ``xvertnet arguments`` in its own process."""
    with open(log, "w") as output:
        done, peak, seconds = run_xvertnet(arguments, log.with_suffix(".peak"), stdout=output, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(
            f"xvertnet {arguments[0]} failed (exit {done.returncode}); see {log}:\n{log.read_text()[-2000:]}"
        )
    return peak / 1e9, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--height", type=int, default=HEIGHT, help="input rows (default Montgomery's 4892; NIH: 1024)")
    parser.add_argument("--width", type=int, default=WIDTH, help="input columns (default Montgomery's 4020; NIH: 1024)")
    parser.add_argument("--base-width", type=int, default=8)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder)")
    parser.add_argument(
        "--stages",
        nargs="+",
        default=["ingest", "roi", "prep", "enhance-shard"],
        help="the stages to run, in order (each needs the ones before it, or their outputs in --keep)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        help="also write the table here, headed by the command, commit and machine (the docs copy it: make docs-tables)",
    )
    args = parser.parse_args()
    from PIL import Image

    lines = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    work = args.keep or Path(tempfile.mkdtemp(prefix="stage_memory."))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows = []
        for index in range(args.images):
            path = work / "images" / f"synthetic{index:02d}.png"
            path.parent.mkdir(exist_ok=True)
            if not path.exists():
                Image.fromarray(radiograph(index, args.height, args.width)).save(path, compress_level=1)
            rows.append(
                {"image_id": path.stem, "path": str(path), "source": "synthetic", "bit_depth": 16, "split": "test"}
            )
        import pandas as pd

        pd.DataFrame(rows).to_csv(work / "shard.csv", index=False)
        model = random_model(
            work / "model", base_width=args.base_width, depth=args.depth, canonical_height=ROI["canonical_height"]
        )
        chain = {"models": [str(model)], "device": "cpu", "tile": 512, "overlap": 64}
        stages = [
            (
                "ingest",
                [
                    "ingest",
                    "--manifest",
                    str(work / "shard.csv"),
                    "--out",
                    str(work / "ingest.h5"),
                    "--rejects",
                    str(work / "ingest.rejects.csv"),
                ],
            ),
            (
                "roi",
                [
                    "roi",
                    str(work / "ingest.h5"),
                    "--out",
                    str(work / "roi.h5"),
                    "--qc-dir",
                    str(work / "qc"),
                    "--rejects",
                    str(work / "roi.rejects.csv"),
                    "--settings",
                    json.dumps(ROI),
                ],
            ),
            ("prep", ["prep", str(work / "roi.h5"), "--out", str(work / "prep.h5")]),
            (
                "enhance-shard",
                [
                    "enhance-shard",
                    "--method",
                    "xvertnet-chain",
                    "--roi",
                    str(work / "roi.h5"),
                    "--out",
                    str(work / "enhanced.h5"),
                    "--png-dir",
                    str(work / "enhanced"),
                    "--splits",
                    "test",
                    "--settings",
                    json.dumps(chain),
                ],
            ),
        ]
        pixels = args.height * args.width
        emit("| stage | peak memory | per input pixel | wall time | per image |")
        emit("|---|---|---|---|---|")
        for name, arguments in stages:
            if name not in args.stages:
                continue
            peak, seconds = run_stage(arguments, work / f"{name}.log")
            emit(
                f"| {name} | {peak:.2f} GB | {peak * 1e9 / pixels:.0f} B | {seconds:.0f} s | {seconds / args.images:.1f} s |"
            )
        emit("")
        emit(
            f"{args.images} synthetic images of {args.width} x {args.height} (16-bit PNG, {pixels / 1e6:.1f} M pixels "
            f"each) in one shard; ROIs at canonical height {ROI['canonical_height']}; XVertNet chain of base width "
            f"{args.base_width}, depth {args.depth}; peak = the stage process's VmHWM."
        )
        if args.markdown:
            from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

            write_run_table(args.markdown, benchmark_command(), "\n".join(lines))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
