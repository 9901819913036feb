"""Burned-in annotations and collimator borders: find them, hide them from the network, put them back.

A burned-in label (side marker, text) or a collimator/border strip is a region at one extreme of the
grey range with a sharp step to its surroundings. A convolutional network that sees such a step
answers with a halo (the "glow" beside a marker) that spreads over its receptive field.
The regions are therefore filled from their surroundings before the network runs (biharmonic
inpainting, scikit-image) and what they add to the image (original minus fill) is added back to the
output, so the anatomy next to them is enhanced as if they were not there and the markers keep
their contrast against it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Share of the grey range below the brightest value that counts as burned-in white (anti-aliased
#: label edges and 8-bit markers a little below the maximum included).
SATURATION_LEVEL = 0.08
#: A saturated region not touching the image border is a label only if it is at most this share of the image.
MAX_LABEL_FRACTION = 0.02
#: Smaller saturated specks are noise (a low-dose image's outliers), not labels.
MIN_LABEL_AREA = 6
#: Minimal step between a region and the ring around it (share of the grey range): labels, strips and
#: metal stand out sharply; bright anatomy (spine, shoulders) rises gradually and is kept.
MIN_STEP = 0.1


def burned_in_mask(
    image: np.ndarray,
    *,
    level: float = SATURATION_LEVEL,
    max_label_fraction: float = MAX_LABEL_FRACTION,
    min_area: int = MIN_LABEL_AREA,
    min_step: float = MIN_STEP,
) -> np.ndarray:
    """Pixels of burned-in labels, border strips and metal: regions near the brightest value (bone-bright
    images, so labels drawn white on display) with a sharp step to their surroundings that are small or
    touch the image border, grown by one pixel to take in their anti-aliased rim.

    A heuristic: thin, low-contrast markers (a grey anti-aliased "L") are not found and keep their
    (weak) halo; a bright strip of anatomy touching the border (neck at the top edge) is kept unenhanced.
    """
    from scipy import ndimage

    image = np.asarray(image, dtype=np.float32)
    # The brightest value that is not a stray outlier pixel: labels are small but never single pixels.
    low, high = float(image.min()), float(max(np.percentile(image, 99.99), image.min()))
    span = high - low
    mask = np.zeros(image.shape, dtype=bool)
    if span <= 0:
        return mask
    structure = np.ones((3, 3), dtype=bool)
    for saturated in (image >= high - level * span,):
        labels, count = ndimage.label(saturated, structure=structure)
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            rows, cols = box
            region = labels[box] == index
            area = int(region.sum())
            touches_border = (
                rows.start == 0 or cols.start == 0 or rows.stop == image.shape[0] or cols.stop == image.shape[1]
            )
            if area < min_area or (not touches_border and area > max_label_fraction * image.size):
                continue
            # The ring 2-4 pixels outside the region, in a box grown by 4 pixels.
            grown = tuple(slice(max(s.start - 4, 0), min(s.stop + 4, n)) for s, n in zip(box, image.shape))
            inside = labels[grown] == index
            ring = ndimage.binary_dilation(inside, structure, iterations=4) & ~ndimage.binary_dilation(
                inside, structure, iterations=1
            )
            ring &= ~saturated[grown]
            if not ring.any():
                continue
            step = abs(float(np.median(image[grown][inside])) - float(np.median(image[grown][ring])))
            if step >= min_step * span:
                mask[grown] |= inside
    return ndimage.binary_dilation(mask, structure) if mask.any() else mask


def fill_burned_in(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the masked pixels replaced by a smooth continuation of their surroundings."""
    if not mask.any():
        return image
    from skimage.restoration import inpaint_biharmonic

    return inpaint_biharmonic(image.astype(np.float64), mask).astype(image.dtype)


def restore_burned_in(enhanced: np.ndarray, original: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Put the labels back onto the enhanced image as what they add to the anatomy: ``original - filled``
    (zero outside the mask, so nothing else changes and no seam appears), clipped to [0, 1].

    At native resolution :func:`xvertnet.model.inference.native_resolution` does it (``filled`` as the low
    input, the mask as ``keep``: the labels are detail added back with gain 1).
    """
    return np.clip(enhanced + (original.astype(np.float32) - filled.astype(np.float32)), 0.0, 1.0).astype(
        enhanced.dtype
    )


def enhance_around_burned_in(image: np.ndarray, enhance: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``enhance(image)`` with burned-in labels and border strips hidden from it and put back."""
    mask = burned_in_mask(image)
    if not mask.any():
        return enhance(image)
    filled = fill_burned_in(image, mask)
    return restore_burned_in(enhance(filled), image, filled)


def draw_side_marker(image: np.ndarray, row: int, col: int, *, value: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A copy of ``image`` with a side marker "R" (30 x 22 pixels, strokes 4 wide) burned in at (row, col),
    and the marker's mask: the synthetic label of the tests and ``benchmarks/burned_in.py``."""
    labelled = image.copy()
    r, c = row, col
    labelled[r : r + 30, c : c + 4] = value
    labelled[r : r + 4, c : c + 20] = value
    labelled[r + 14 : r + 18, c : c + 20] = value
    labelled[r : r + 18, c + 18 : c + 22] = value
    for i in range(14):
        labelled[r + 16 + i, c + 6 + i : c + 10 + i] = value
    return labelled, labelled != image
