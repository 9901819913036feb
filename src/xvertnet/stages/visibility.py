"""Command ``xvertnet visibility``: the vertebral task measures of one image and its vertebra mask.

The same definitions as the workflow's (:mod:`xvertnet.metrics.task`, :mod:`xvertnet.metrics.displayed`)
on a whole radiograph (a vertebral body taken as a sixteenth of the image height):

* ``cnr`` and ``edge``: the signed vertebral CNR and edge-to-noise over all the mask, each over the
  noise at its scale, which needs ``--twin`` (the same acquisition with independent noise, processed
  the same way: for a method's output, its output on the twin);
* ``displayed_contrast``, ``displayed_cnr`` (needs ``--twin``) and ``displayed_saturation`` per
  vertebral level and their mean, at one window (the image's 1st-99th percentiles).

``--mask`` is a binary vertebra mask or a level map (8-bit PNG, 0 = none, 1 = the most superior
level); a binary mask's connected parts become levels, numbered from the top. With ``--original``
(and ``--original-twin``) the ratios ``cnr_ratio`` and ``edge_ratio`` to the original's values are
added, as in the workflow's tables. A measure that cannot be computed is NaN, with one warning
line saying why.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from xvertnet.errors import InputImageError

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    parser.add_argument("image", type=Path, help="the image (any format `xvertnet enhance` reads)")
    parser.add_argument("--mask", required=True, type=Path, help="vertebra mask or level map, same size as the image")
    parser.add_argument("--twin", type=Path, help="the same image with independent noise (for the noise measures)")
    parser.add_argument("--original", type=Path, help="the original the image was enhanced from (ratios to it)")
    parser.add_argument("--original-twin", type=Path, help="the original's noise twin")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _levels(path: Path, shape) -> np.ndarray:
    from scipy import ndimage

    from xvertnet.io.ingest import read_levels

    levels = read_levels(path, shape)
    values = np.unique(levels[levels > 0])
    if len(values) == 1:  # a binary mask: its connected parts, numbered from the top
        parts, count = ndimage.label(levels > 0)
        rows = ndimage.center_of_mass(parts > 0, parts, range(1, count + 1))
        order = np.argsort([row for row, _ in rows]) + 1
        renumber = np.zeros(count + 1, dtype=np.uint8)
        renumber[order] = np.arange(1, count + 1)
        levels = renumber[parts]
    if not (levels > 0).any():
        raise InputImageError(path, "the vertebra mask is empty")
    return levels


def measure(image: np.ndarray, levels: np.ndarray, twin: np.ndarray | None) -> dict:
    """The task measures of one image (module docstring)."""
    from xvertnet.metrics.displayed import level_visibility
    from xvertnet.metrics.task import body_scale, vertebral_cnr, vertebral_edge_strength

    found: dict = {"cnr": float("nan"), "edge": float("nan")}
    if twin is not None:
        body_px = body_scale(image.shape[0])
        found["cnr"] = vertebral_cnr(image, twin, levels > 0, body_px=body_px)
        found["edge"] = vertebral_edge_strength(image, twin, levels > 0)
    per_level = level_visibility(image, levels, twin=twin)
    for name in ("displayed_contrast", "displayed_cnr", "displayed_saturation"):
        values = [values[name] for values in per_level.values()]
        found[name] = float(np.mean(values)) if values else float("nan")
    found["levels"] = {
        int(level): {key: round(value, 5) for key, value in values.items()} for level, values in per_level.items()
    }
    return found


def run(args) -> int:
    from xvertnet.io.readers import read_image

    def load(path):  # every measure is invariant to a linear map of the grey levels: the stored values will do
        return read_image(path).pixels.astype(np.float64)

    image = load(args.image)
    levels = _levels(args.mask, image.shape)
    partners = {}
    for name in ("twin", "original", "original_twin"):
        path = getattr(args, name)
        if path is not None:
            partners[name] = load(path)
            if partners[name].shape != image.shape:
                raise InputImageError(path, f"shape {partners[name].shape} differs from {args.image} {image.shape}")
    if "twin" not in partners:
        log.warning(
            "%s: no --twin, so cnr, edge and displayed_cnr are NaN (they need the noise at a vertebral body's scale)",
            args.image,
        )
    found = measure(image, levels, partners.get("twin"))
    if "original" in partners:
        original = measure(partners["original"], levels, partners.get("original_twin"))
        for name in ("cnr", "edge"):
            found[f"{name}_ratio"] = found[name] / original[name] if original[name] > 0 else float("nan")
        found["original"] = {key: value for key, value in original.items() if key != "levels"}
    if args.json:
        print(json.dumps({"image": str(args.image), "mask": str(args.mask), **found}, indent=2))
    else:
        for name, value in found.items():
            if not isinstance(value, dict):
                print(f"{name:>22}  {value:.6g}")
    return 0
