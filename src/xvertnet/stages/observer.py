"""Command ``xvertnet observer``: the model observers of :mod:`xvertnet.evaluation.observer` on your own images.

``--present`` and ``--absent`` are folders of images of equal size (PNG, or any format ``xvertnet
enhance`` reads), the signal at the same place in each: ``--location ROW,COLUMN`` (pixels; default the
centre). Each image is shown as a reader would see it (one window, 8 bits), a ``--size`` patch around
the location goes to the channelized Hotelling and the non-prewhitening-with-eye-filter observers;
the images are split into two folds by their order in each folder (alternately), the template of
one fold scores the other, and the AUC and d' of all scores are printed with their 95 % bootstrap
intervals (over images).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from xvertnet.errors import InputImageError, InvalidValueError

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".dcm")


def add_arguments(parser) -> None:
    parser.add_argument("--present", required=True, type=Path, help="folder of signal-present images")
    parser.add_argument("--absent", required=True, type=Path, help="folder of signal-absent images")
    parser.add_argument("--location", help="the signal's centre as ROW,COLUMN in pixels (default: the image centre)")
    parser.add_argument(
        "--size", type=int, default=64, help="side of the patch the observers read, pixels (default 64)"
    )
    parser.add_argument("--channels", choices=("gabor", "laguerre-gauss"), default="gabor", help="the CHO's channels")
    parser.add_argument(
        "--internal-noise",
        type=float,
        default=1.0,
        help="internal noise variance, share of the decision variable's external variance (default 1)",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputImageError(folder, "not a folder")
    paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in SUFFIXES)
    if len(paths) < 4:
        raise InputImageError(folder, f"{len(paths)} images; the observers need at least 4 (two per fold)")
    return paths


def read_patches(paths, location, size) -> tuple[np.ndarray, tuple]:
    """The displayed patches around ``location`` (None: the centre) of every image; all images must share one shape."""
    from xvertnet.evaluation.observer import displayed, patch
    from xvertnet.io.readers import read_image

    patches, shape = [], None
    for path in paths:
        pixels = read_image(path).pixels.astype(np.float64)
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            raise InputImageError(path, f"shape {pixels.shape} differs from the first image's {shape}")
        centre = location if location is not None else ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
        patches.append(patch(displayed(pixels), centre, size))
    return np.stack(patches), shape


def assess(present: np.ndarray, absent: np.ndarray, settings) -> dict:
    """AUC and d' with intervals for every observer, from two folds of alternate images."""
    from xvertnet.evaluation.observer import bootstrap_indices, observer_scores, summarise

    scores = observer_scores(present, absent, np.arange(len(present)) % 2, np.arange(len(absent)) % 2, settings)
    resamples = bootstrap_indices(np.zeros(len(present)), np.zeros(len(absent)), settings.bootstrap, settings.seed)
    return {name: summarise(p, a, resamples) for name, (p, a) in scores.items()}


def run(args) -> int:
    from xvertnet.evaluation.observer import ObserverSettings

    location = None
    if args.location:
        try:
            location = tuple(float(value) for value in args.location.split(","))
        except ValueError:
            location = ()
        if len(location) != 2:
            raise InvalidValueError(f"--location must be ROW,COLUMN in pixels, got '{args.location}'")
    settings = ObserverSettings(
        patch_px=args.size, channels=args.channels, internal_noise=args.internal_noise, bootstrap=args.bootstrap
    )
    present, shape = read_patches(_images(args.present), location, args.size)
    absent, absent_shape = read_patches(_images(args.absent), location, args.size)
    if absent_shape != shape:
        raise InputImageError(args.absent, f"images are {absent_shape}, the signal-present ones {shape}")
    found = assess(present, absent, settings)
    if args.json:
        print(
            json.dumps(
                {
                    "present": str(args.present),
                    "absent": str(args.absent),
                    "patch_px": args.size,
                    "location": list(location) if location else "centre",
                    "observers": found,
                },
                indent=2,
            )
        )
    else:
        for name, row in found.items():
            print(
                f"{name:>5}  AUC {row['auc']:.3f} ({row['auc_low']:.3f}-{row['auc_high']:.3f})  "
                f"d' {row['dprime']:.3f} ({row['dprime_low']:.3f}-{row['dprime_high']:.3f})  "
                f"n {row['n_present']}+{row['n_absent']}"
            )
    return 0
