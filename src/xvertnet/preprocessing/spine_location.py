"""Finding the spine on a chest radiograph: the image at its canonical height, the vertebral column's response
(a bright bar between two edges), the best vertical path through it, and the ROI boxes above and below the
heart around it."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
from scipy import ndimage

from xvertnet.errors import InvalidValueError
from xvertnet.settings import FromConfig


@dataclasses.dataclass(frozen=True)
class RoiSettings(FromConfig):
    """Parameters of the ROI stage (config section ``roi``); see the config schema for each.

    Sizes are (height, width) in canonical pixels. Defaults are the schema's (demo scale;
    paper scale: 2048, 512 x 512, 512 x 290).
    """

    SECTION: ClassVar[str] = "roi"

    canonical_height: int = 512
    train_size: tuple[int, int] = (256, 256)
    eval_size: tuple[int, int] = (128, 73)
    spine_width_fraction: float = 0.14
    search_fraction: float = 0.40
    max_step: int = 1
    upper_fraction: float = 0.30
    lower_fraction: float = 0.80
    lung_contrast: float = 0.5
    max_eval_overlap: float = 0.25
    qc_max_per_shard: int = 256
    #: The spine is located on the canonical image resampled to at most this height (every scale of the locator is
    #: a fraction of the height, so a taller image only costs time: 16x the pixels and 4x the filter widths at 2048).
    locate_height: int = 512

    def __post_init__(self):
        for name in ("train_size", "eval_size"):
            height, width = getattr(self, name)
            if height < 8 or width < 8:
                raise InvalidValueError(f"roi {name} must be at least 8x8, got {height}x{width}")
            if height > self.canonical_height:
                raise InvalidValueError(f"roi {name} height {height} exceeds canonical_height {self.canonical_height}")
        if self.locate_height < 64:
            raise InvalidValueError(f"roi locate_height must be at least 64, got {self.locate_height}")
        if not 0.0 <= self.max_eval_overlap < 1.0:
            raise InvalidValueError(f"roi max_eval_overlap must be in [0, 1), got {self.max_eval_overlap}")
        if not 0.0 < self.upper_fraction < self.lower_fraction < 1.0:
            raise InvalidValueError(
                f"expected 0 < upper_fraction < lower_fraction < 1, got {self.upper_fraction}, {self.lower_fraction}"
            )


@dataclasses.dataclass
class SpineLocation:
    """Where the spine is, in canonical pixels."""

    centre_x: np.ndarray  # (H,) float: x of the spine centre line per row
    upper_y: int
    lower_y: int
    lung_rows: tuple[int, int] | None  # first and last lung row, or None
    vertical_method: str  # "lung-field" or "image-fraction"

    def centre_at(self, row: int) -> float:
        return float(self.centre_x[int(np.clip(row, 0, len(self.centre_x) - 1))])


def to_canonical(image: np.ndarray, canonical_height: int) -> tuple[np.ndarray, float]:
    """Resample so the height is ``canonical_height`` (aspect kept, anti-aliased); return (image, scale)."""
    from skimage.transform import resize

    scale = canonical_height / image.shape[0]
    width = max(1, int(round(image.shape[1] * scale)))
    resized = resize(
        image, (canonical_height, width), order=1, mode="edge", anti_aliasing=scale < 1, preserve_range=True
    )
    return resized.astype(np.float32), scale


def resample_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a label mask to ``shape``."""
    from skimage.transform import resize

    return resize(mask, shape, order=0, mode="edge", anti_aliasing=False, preserve_range=True).astype(mask.dtype)


def bar_response(image: np.ndarray, bar_width: int) -> np.ndarray:
    """Bright-bar detector: mean over a bar of ``bar_width`` columns minus the mean of its two flanks."""
    smooth = ndimage.gaussian_filter(image.astype(np.float64), sigma=bar_width / 6.0)
    centre = ndimage.uniform_filter1d(smooth, size=bar_width, axis=1, mode="nearest")
    left = ndimage.shift(centre, (0, bar_width), order=0, mode="nearest")  # the bar one width to the left
    right = ndimage.shift(centre, (0, -bar_width), order=0, mode="nearest")
    return centre - 0.5 * (left + right)


def edge_pair_response(image: np.ndarray, column_width: int) -> np.ndarray:
    """Paired-border detector: a rising edge ``column_width / 2`` to the left *and* a falling
    edge as far to the right (the smaller of the two), i.e. a bright column of that width.

    Unlike :func:`bar_response` it ignores how bright the inside is, so a bright
    mediastinum next to the spine pulls it less.
    """
    gradient = ndimage.gaussian_filter(
        image.astype(np.float64), sigma=(column_width / 3.0, column_width / 8.0), order=(0, 1)
    )
    half = column_width // 2
    rising_left = ndimage.shift(gradient, (0, half), order=0, mode="nearest")
    falling_right = ndimage.shift(-gradient, (0, -half), order=0, mode="nearest")
    return np.minimum(rising_left, falling_right)


def spine_response(image: np.ndarray, column_width: int) -> np.ndarray:
    """Sum of the bar and the paired-border responses, each scaled by its 99th percentile."""
    bar = bar_response(image, max(4, int(round(0.7 * column_width))))
    edges = edge_pair_response(image, column_width)
    return bar / max(np.percentile(bar, 99), 1e-6) + edges / max(np.percentile(edges, 99), 1e-6)


def best_vertical_path(response: np.ndarray, *, columns: slice, max_step: int) -> np.ndarray:
    """Column per row of the path with the largest summed response (dynamic programming)."""
    score = response[:, columns].astype(np.float64)
    height, width = score.shape
    back = np.zeros((height, width), dtype=np.int64)
    total = score[0].copy()
    offsets = np.arange(-max_step, max_step + 1)
    for row in range(1, height):
        candidates = np.full((len(offsets), width), -np.inf)
        for k, offset in enumerate(offsets):
            lo, hi = max(0, offset), min(width, width + offset)
            candidates[k, lo - offset : hi - offset] = total[lo:hi]
        best = np.argmax(candidates, axis=0)
        back[row] = np.arange(width) + offsets[best]
        total = candidates[best, np.arange(width)] + score[row]
    path = np.empty(height, dtype=np.int64)
    path[-1] = int(np.argmax(total))
    for row in range(height - 1, 0, -1):
        path[row - 1] = back[row, path[row]]
    return path + (columns.start or 0)


def locate_spine(image: np.ndarray, settings: RoiSettings) -> SpineLocation:
    """Find the spine centre line and the upper/lower ROI rows in a canonical image.

    An image taller than ``settings.locate_height`` is searched at that height (resampled, anti-aliased) and the
    centre line and lung rows are scaled back to its pixels.

    Parameters
    ----------
    image : ndarray, float, (H, W)
        Canonical radiograph in [0, 1], bone bright.
    settings : RoiSettings

    Returns
    -------
    SpineLocation
    """
    if image.ndim != 2:
        raise InvalidValueError(f"expected a 2-D image, got shape {image.shape}")
    height = image.shape[0]
    if height > settings.locate_height:
        working, scale = to_canonical(image, settings.locate_height)
        small_centre, small_rows = _centre_line_and_lung_rows(working, settings)
        rows = (np.arange(height) + 0.5) * scale - 0.5  # each row's position in the working image
        centre_x = (np.interp(rows, np.arange(len(small_centre)), small_centre) + 0.5) / scale - 0.5
        lung_rows = None
        if small_rows is not None:
            lung_rows = tuple(int(min(height - 1, round((row + 0.5) / scale - 0.5))) for row in small_rows)
    else:
        centre_x, lung_rows = _centre_line_and_lung_rows(image, settings)
    if lung_rows is not None and (lung_rows[1] - lung_rows[0]) >= 0.25 * height:
        top, bottom = lung_rows
        method = "lung-field"
    else:
        top, bottom, lung_rows = 0, height - 1, None
        method = "image-fraction"
    extent = bottom - top
    upper_y = int(round(top + settings.upper_fraction * extent))
    lower_y = int(round(top + settings.lower_fraction * extent))
    return SpineLocation(centre_x, upper_y, lower_y, lung_rows, method)


def _centre_line_and_lung_rows(image: np.ndarray, settings: RoiSettings):
    """The spine centre line (x per row) and the longest run of lung-field rows (or None) of ``image``."""
    height, width = image.shape
    low, high = np.percentile(image, (1, 99))
    normalised = np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0)
    column_width = max(6, int(round(settings.spine_width_fraction * height)))
    response = spine_response(normalised, column_width)
    half_band = settings.search_fraction * width / 2.0
    columns = slice(
        int(max(column_width, width / 2.0 - half_band)), int(min(width - column_width, width / 2.0 + half_band))
    )
    if columns.stop - columns.start < 3:
        raise InvalidValueError(
            f"image {width} px wide is too narrow to search for the spine (column width {column_width})"
        )
    path = best_vertical_path(response, columns=columns, max_step=settings.max_step).astype(np.float64)
    path = ndimage.median_filter(path, size=max(3, height // 16), mode="nearest")
    centre_x = ndimage.gaussian_filter1d(path, sigma=height / 40.0, mode="nearest")

    # Lung fields: rows where both flanks of the spine are much darker than the spine,
    # relative to the strongest such contrast in the image (lungs are the darkest part
    # of the thorax; beside the abdominal spine the contrast is far smaller).
    smooth = ndimage.gaussian_filter(normalised, sigma=column_width / 4.0)
    rows = np.arange(height)
    spine = smooth[rows, np.clip(np.rint(centre_x).astype(int), 0, width - 1)]
    flank = 1.5 * column_width
    left = smooth[rows, np.clip(np.rint(centre_x - flank).astype(int), 0, width - 1)]
    right = smooth[rows, np.clip(np.rint(centre_x + flank).astype(int), 0, width - 1)]
    contrast = ndimage.median_filter(spine - np.maximum(left, right), size=max(3, height // 32), mode="nearest")
    reference = np.percentile(contrast, 95)
    darker = contrast > settings.lung_contrast * reference if reference > 0 else np.zeros(height, bool)
    return centre_x, _longest_run(darker)


def _longest_run(flags: np.ndarray) -> tuple[int, int] | None:
    """(first, last) index of the longest run of True, or None."""
    labels, count = ndimage.label(flags)
    if count == 0:
        return None
    sizes = ndimage.sum(flags, labels, index=np.arange(1, count + 1))
    index = int(np.argmax(sizes)) + 1
    where = np.flatnonzero(labels == index)
    return int(where[0]), int(where[-1])


Bounds = tuple[int, int, int, int]  # first row, row after the last, first column, column after the last


def anatomy_bounds(image: np.ndarray, *, strip_share: float = 0.25) -> Bounds:
    """Rows and columns of ``image`` inside its border strips: leading and trailing rows (columns) where
    burned-in white (a collimator or scanner border strip, :func:`xvertnet.preprocessing.burned_in.burned_in_mask`)
    covers more than ``strip_share`` of the row (column)."""
    from xvertnet.preprocessing.burned_in import burned_in_mask

    strips = burned_in_mask(image)

    def inner(share: np.ndarray) -> tuple[int, int]:
        inside = np.flatnonzero(share <= strip_share)
        if inside.size == 0:
            return 0, len(share)
        return int(inside[0]), int(inside[-1]) + 1

    top, bottom = inner(strips.mean(axis=1))
    left, right = inner(strips.mean(axis=0))
    return top, bottom, left, right


def box_around(
    centre_y: float, centre_x: float, size: tuple[int, int], shape: tuple[int, int], bounds: Bounds | None = None
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a box of ``size`` centred at the point, shifted inside ``bounds``
    (default: the whole ``shape``)."""
    height, width = size
    top_limit, bottom_limit, left_limit, right_limit = bounds or (0, shape[0], 0, shape[1])
    if height > bottom_limit - top_limit or width > right_limit - left_limit:
        where = "a canonical image" if bounds is None else "the anatomy (inside the border strips) of a canonical image"
        raise InvalidValueError(
            f"ROI {height}x{width} does not fit {where} of {bottom_limit - top_limit}x{right_limit - left_limit}"
        )
    top = int(round(centre_y - height / 2.0))
    left = int(round(centre_x - width / 2.0))
    top = min(max(top, top_limit), bottom_limit - height)
    left = min(max(left, left_limit), right_limit - width)
    return top, left, height, width


def roi_boxes(
    location: SpineLocation, settings: RoiSettings, shape: tuple[int, int], bounds: Bounds | None = None
) -> dict[str, tuple[int, int, int, int]]:
    """The four ROI boxes, centred on the spine at the upper and the lower row, inside ``bounds``.

    The two evaluation ROIs share at most ``settings.max_eval_overlap`` of their height: ones closer
    than that move apart (each by half, or one more where the other meets the anatomy's edge); an
    image too short for that is refused.
    """
    boxes = {}
    for level, row in (("upper", location.upper_y), ("lower", location.lower_y)):
        centre = location.centre_at(row)
        boxes[f"train_{level}"] = box_around(row, centre, settings.train_size, shape, bounds)
        boxes[f"eval_{level}"] = box_around(row, centre, settings.eval_size, shape, bounds)
    height = settings.eval_size[0]
    allowed = int(np.floor(settings.max_eval_overlap * height))
    upper_top, lower_top = boxes["eval_upper"][0], boxes["eval_lower"][0]
    excess = upper_top + height - lower_top - allowed
    if excess > 0:
        top_limit, bottom_limit = (bounds or (0, shape[0]))[:2]
        upper_top -= excess // 2
        lower_top += excess - excess // 2
        if upper_top < top_limit:
            lower_top += top_limit - upper_top
            upper_top = top_limit
        if lower_top + height > bottom_limit:
            upper_top -= lower_top + height - bottom_limit
            lower_top = bottom_limit - height
        if upper_top < top_limit:
            raise InvalidValueError(
                f"evaluation ROIs {height} rows tall cannot overlap by at most {settings.max_eval_overlap:.0%} in the "
                f"{bottom_limit - top_limit} rows of anatomy; lower roi.eval_size or raise roi.canonical_height"
            )
        for level, top in (("upper", upper_top), ("lower", lower_top)):
            boxes[f"eval_{level}"] = box_around(
                top + height / 2.0, location.centre_at(top + height // 2), settings.eval_size, shape, bounds
            )
    return boxes


def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, height, width = box
    return image[top : top + height, left : left + width]
