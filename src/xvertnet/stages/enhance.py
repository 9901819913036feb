"""Command ``xvertnet enhance``: one image file (PNG/JPEG/TIFF/JSRT/DICOM) -> 16-bit PNG or, for a DICOM input, a derived DICOM.

The work is :mod:`xvertnet.model.whole_image`'s: the chain at the models' canonical height, carried over to the
input's full resolution.
"""

from __future__ import annotations

import logging
from pathlib import Path

from xvertnet.settings import add_settings_argument, load_settings


def add_arguments(parser) -> None:
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path, help="*.png, or *.dcm for a DICOM input (a PNG input cannot give a DICOM)")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a model directory or a folder of iter1, iter2, ... (default: the model set shipped with the package, "
        "see its MODEL_CARD.md)",
    )
    parser.add_argument("--iterations", type=int, default=None, help="apply only the first N iterations")
    add_settings_argument(parser, "enhance")


def run(args) -> int:
    from xvertnet.model.inference import EnhanceSettings
    from xvertnet.model.whole_image import enhance_file, model_dirs

    settings = EnhanceSettings.from_config(load_settings(args.settings))
    description = enhance_file(model_dirs(args.model), args.input, args.output, settings, iterations=args.iterations)
    logging.getLogger("xvertnet").info(
        "enhanced %s -> %s with %d iteration(s)", args.input, args.output, description["iterations_applied"]
    )
    return 0
