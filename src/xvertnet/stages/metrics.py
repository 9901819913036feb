"""Command ``xvertnet metrics``: every quality measure of one image (0-255; docs/measures.md gives the mapping).

An image above ``metrics.max_pixels`` is measured on its block mean (one log line says so and
``--json`` records the block size); a measure that is undefined on the image (e.g. BRISQUE and
NIQE of a constant image) prints NaN, with one warning line saying which and why.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from xvertnet.errors import XvertnetError
from xvertnet.settings import add_settings_argument, load_settings

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("image", type=Path)
    parser.add_argument("--reference", type=Path, help="reference image: TMQI reference and PSNR/SSIM clean reference")
    parser.add_argument("--json", action="store_true")
    add_settings_argument(parser, "metrics")


def run(args) -> int:
    from xvertnet.io.readers import flat_image_reason, read_image
    from xvertnet.metrics import MetricParams, measure_all, to_255

    params = MetricParams.from_config(load_settings(args.settings))
    pixels = read_image(args.image).pixels
    reference = to_255(read_image(args.reference).pixels) if args.reference else None
    if reference is not None and reference.shape != pixels.shape:
        raise XvertnetError(f"{args.reference}: shape {reference.shape} differs from {args.image} {pixels.shape}")
    flat = flat_image_reason(pixels)
    image = to_255(pixels)
    del pixels
    errors: dict[str, str] = {}
    details: dict = {}
    values = measure_all(
        image, reference255=reference, clean255=reference, params=params, errors=errors, details=details
    )
    if details["downsample"] > 1:
        shape = "x".join(map(str, image.shape[::-1]))
        measured = "x".join(map(str, details["measured_shape"][::-1]))
        log.info(
            "%s: %s pixels, above metrics.max_pixels %d: measured on its %dx%d block mean (%s)",
            args.image,
            shape,
            params.max_pixels,
            details["downsample"],
            details["downsample"],
            measured,
        )
    if errors and flat:
        log.warning("%s: %s %s NaN (%s)", args.image, ", ".join(errors), "is" if len(errors) == 1 else "are", flat)
    elif errors:
        log.warning("%s: %s", args.image, "; ".join(f"{name} is NaN ({reason})" for name, reason in errors.items()))
    if args.json:
        print(
            json.dumps(
                {
                    "image": str(args.image),
                    "reference": str(args.reference) if args.reference else None,
                    "measures": values,
                    "params": params.record(),
                    **details,
                },
                indent=2,
            )
        )
    else:
        for name, value in values.items():
            print(f"{name:>10}  {value:.6g}")
    return 0
