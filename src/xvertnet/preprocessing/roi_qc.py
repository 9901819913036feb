"""The ROI stage's quality-control picture: the canonical image with the spine path and the training and evaluation
boxes drawn on it."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from xvertnet.io.atomic import atomic_path
from xvertnet.preprocessing.spine_location import SpineLocation

#: QC overlay colours, and the legend drawn under the image.
QC_COLOURS = {
    "spine centre": (255, 255, 0),
    "training ROI": (0, 200, 255),
    "evaluation ROI": (255, 80, 0),
    "lung-field rows": (0, 255, 0),
    "vertebra mask": (255, 0, 255),
}


#: A canonical image taller than this is drawn at an integer fraction of its size (a QC picture is looked at,
#: not measured; a 2048-row overlay took longer to encode than the spine took to find).
QC_MAX_HEIGHT = 1024


def qc_overlay(
    image: np.ndarray, location: SpineLocation, boxes: dict, path, *, mask: np.ndarray | None = None
) -> None:
    """Write a PNG showing the canonical image, the spine line, the ROI boxes and the mask outline, with a legend."""
    from PIL import Image, ImageDraw

    factor = max(1, -(-image.shape[0] // QC_MAX_HEIGHT))
    if factor > 1:  # block means of factor x factor pixels, every coordinate divided by the factor
        rows, cols = image.shape[0] // factor * factor, image.shape[1] // factor * factor
        image = image[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))
        if mask is not None:
            mask = mask[:rows:factor, :cols:factor]
        location = SpineLocation(
            location.centre_x[::factor][: image.shape[0]] / factor,
            location.upper_y // factor,
            location.lower_y // factor,
            None if location.lung_rows is None else tuple(row // factor for row in location.lung_rows),
            location.vertical_method,
        )
        boxes = {name: tuple(value // factor for value in box) for name, box in boxes.items()}
    grey = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    if mask is not None:
        edge = mask.astype(bool) & ~ndimage.binary_erosion(mask.astype(bool))
        rgb[edge] = QC_COLOURS["vertebra mask"]
    legend = [name for name in QC_COLOURS if name != "vertebra mask" or mask is not None]
    if location.lung_rows is None:
        legend.remove("lung-field rows")
    line_height, height, width = 12, rgb.shape[0], rgb.shape[1]
    # The legend wraps into as many lines as the width needs (6 px per character of the default font).
    lines, current = [[]], 0
    for name in legend:
        need = 6 * (len(name) + 3)
        if current + need > width and lines[-1]:
            lines.append([])
            current = 0
        lines[-1].append(name)
        current += need
    canvas = np.zeros((height + line_height * len(lines) + 4, width, 3), dtype=np.uint8)
    canvas[:height] = rgb
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    draw.line([(float(x), float(y)) for y, x in enumerate(location.centre_x)], fill=QC_COLOURS["spine centre"], width=1)
    colours = {"train": QC_COLOURS["training ROI"], "eval": QC_COLOURS["evaluation ROI"]}
    for name, (top, left, box_height, box_width) in boxes.items():
        draw.rectangle(
            [left, top, left + box_width - 1, top + box_height - 1], outline=colours[name.split("_")[0]], width=2
        )
    if location.lung_rows is not None:
        for row in location.lung_rows:
            draw.line([(0, row), (8, row)], fill=QC_COLOURS["lung-field rows"], width=2)
    for index, names in enumerate(lines):
        x, y = 2, height + 2 + index * line_height
        for name in names:
            draw.rectangle([x, y + 2, x + 7, y + 9], fill=QC_COLOURS[name])
            draw.text((x + 11, y), name, fill=(255, 255, 255))
            x += 6 * (len(name) + 3)
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG", compress_level=1)  # a picture to look at: fast beats small
