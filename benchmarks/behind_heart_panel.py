"""The region behind the heart, close up: the original and chosen methods' whole-image outputs of a `make demo` run.

For each image (default: the test patient's standard and low-dose AP DRRs and RG1_UNCR), the lower evaluation
ROI's neighbourhood (the ROI and a margin of 20 rows and 40 columns) cut from each method's enhanced whole image,
each whole image at its own 1st-99th percentile window, enlarged 3 times; rows are images, columns methods.

    python benchmarks/behind_heart_panel.py [--results results] [--methods original xvertnet clahe lut-mapping] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from xvertnet.metrics.displayed import display


def lower_box(results: Path, dataset: str, image_id: str) -> list[int]:
    for path in sorted((results / dataset / "roi").glob("*.h5")):
        with h5py.File(path, "r") as handle:
            if image_id in handle["items"]:
                return json.loads(handle["items"][image_id].attrs["boxes"])["eval_lower"]
    raise SystemExit(f"{image_id} is in no ROI shard under {results / dataset / 'roi'}")


def whole(results: Path, method: str, dataset: str, image_id: str) -> np.ndarray:
    found = sorted((results / "enhanced" / method / dataset).glob(f"*/{image_id}_whole.png"))
    if not found:
        raise SystemExit(f"no whole image of {image_id} for {method} under {results / 'enhanced' / method / dataset}")
    return np.asarray(Image.open(found[0])).astype(np.float64) / 65535.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--dataset", default="demo")
    parser.add_argument(
        "--images", nargs="+", default=["drr_tschest_ap_standard", "drr_tschest_ap_low_dose", "rg1_uncr"]
    )
    parser.add_argument("--methods", nargs="+", default=["original", "xvertnet", "clahe", "lut-mapping"])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/behind_heart.png"))
    args = parser.parse_args()
    rows = []
    for image_id in args.images:
        top, left, height, width = lower_box(args.results, args.dataset, image_id)
        top, left = max(0, top - 20), max(0, left - 40)
        tiles = []
        for method in args.methods:
            shown = display(whole(args.results, method, args.dataset, image_id))[
                top : top + height + 40, left : left + width + 80
            ]
            tiles += [shown, np.ones((shown.shape[0], 4))]
        rows += [np.concatenate(tiles[:-1], axis=1), np.ones((4, sum(t.shape[1] for t in tiles[:-1])))]
    panel = np.concatenate(rows[:-1], axis=0)
    image = Image.fromarray((panel * 255).astype(np.uint8))
    image.resize((panel.shape[1] * 3, panel.shape[0] * 3), Image.NEAREST).save(args.out)
    print(f"wrote {args.out}: rows {', '.join(args.images)}; columns {', '.join(args.methods)}")


if __name__ == "__main__":
    main()
