"""Command ``xvertnet metrics``: every quality measure of one image (0-255; see README for the mapping)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import XvertnetError
from ..settings import load_settings
from . import add_settings_argument


def add_arguments(parser) -> None:
    parser.add_argument("image", type=Path)
    parser.add_argument("--reference", type=Path, help="reference image: TMQI reference and PSNR/SSIM clean reference")
    parser.add_argument("--json", action="store_true")
    add_settings_argument(parser, "metrics")


def run(args) -> int:
    from ..metrics import MetricParams, measure_all, to_255
    from ..readers import read_image

    image = to_255(read_image(args.image).pixels)
    reference = to_255(read_image(args.reference).pixels) if args.reference else None
    if reference is not None and reference.shape != image.shape:
        raise XvertnetError(f"{args.reference}: shape {reference.shape} differs from {args.image} {image.shape}")
    params = MetricParams.from_config(load_settings(args.settings))
    values = measure_all(image, reference255=reference, clean255=reference, params=params)
    if args.json:
        print(json.dumps({"image": str(args.image), "reference": str(args.reference) if args.reference else None,
                          "measures": values, "params": params.record()}, indent=2))
    else:
        for name, value in values.items():
            print(f"{name:>10}  {value:.6g}")
    return 0
