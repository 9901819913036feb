"""Spine regions of interest: canonical scale, automatic spine localisation, crops.

Every image is resampled to a canonical height (so crops from 1024², 2048² and
4020 x 4892 images cover comparable anatomy). The spine is then located without
manual input:

1. *Spine centre line.* In a frontal chest radiograph (bone bright) the thoracic
   spine is a bright vertical bar about a tenth of the image height wide, between
   darker lungs. A bar detector (mean over the bar minus the mean of the two flanks
   of the same width) responds to it; a dynamic programme then picks the vertical
   path through the central part of the image with the largest total response,
   moving at most ``max_step`` pixels sideways per row, and the path is smoothed.
2. *Vertical extent.* The lung fields are the rows where both flanks of the spine
   are markedly darker than the spine; the upper and lower ROIs are centred at
   fixed fractions of that extent (fractions of the image height when no lung
   field is found; which one was used is recorded).

Two training ROIs (paper: 512 x 512) and two evaluation ROIs (paper: 512 tall x
290 wide, narrow strips along the spine) are cut centred on the spine at the upper
and the lower position, identical for every method downstream.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy import ndimage

from xvertnet.errors import InvalidValueError, XvertnetError
from xvertnet.io.atomic import atomic_path
from xvertnet.io.readers import flat_image_reason
from xvertnet.io.shard_store import TRAIN_ROIS, iter_items, open_shard_for_writing
from xvertnet.settings import FromConfig

log = logging.getLogger(__name__)


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

    def __post_init__(self):
        for name in ("train_size", "eval_size"):
            height, width = getattr(self, name)
            if height < 8 or width < 8:
                raise InvalidValueError(f"roi {name} must be at least 8x8, got {height}x{width}")
            if height > self.canonical_height:
                raise InvalidValueError(f"roi {name} height {height} exceeds canonical_height {self.canonical_height}")
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
    lung_rows = _longest_run(darker)
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


#: QC overlay colours, and the legend drawn under the image.
QC_COLOURS = {
    "spine centre": (255, 255, 0),
    "training ROI": (0, 200, 255),
    "evaluation ROI": (255, 80, 0),
    "lung-field rows": (0, 255, 0),
    "vertebra mask": (255, 0, 255),
}


def qc_overlay(
    image: np.ndarray, location: SpineLocation, boxes: dict, path, *, mask: np.ndarray | None = None
) -> None:
    """Write a PNG showing the canonical image, the spine line, the ROI boxes and the mask outline, with a legend."""
    from PIL import Image, ImageDraw

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
        picture.save(tmp, format="PNG")


def roi_shard(ingest_path, out_path, qc_dir, settings: RoiSettings, rejects_path) -> tuple[int, int]:
    """Cut ROIs for every image of an ingest shard; return (stored, rejected).

    Writes ``out_path`` (HDF5: per image the canonical image, the four ROIs and,
    where a ground-truth vertebra mask exists, the mask and its four crops), one
    QC overlay PNG per image into ``qc_dir`` (the first ``settings.qc_max_per_shard``
    images), and a rejects CSV.
    """
    from xvertnet.io.ingest import write_rejects

    qc_dir = Path(qc_dir)
    qc_dir.mkdir(parents=True, exist_ok=True)
    rejects = []
    params = settings.record()
    with open_shard_for_writing(out_path, stage="roi", params=params) as shard:
        for index, (image_id, arrays, attrs) in enumerate(iter_items(ingest_path)):
            try:
                flat = flat_image_reason(arrays["image"])
                if flat:  # ingest rejects these; a shard written elsewhere may hold one
                    raise XvertnetError(f"{flat}, nothing to enhance")
                canonical, scale = to_canonical(arrays["image"], settings.canonical_height)
                location = locate_spine(canonical, settings)
                bounds = anatomy_bounds(canonical)
                boxes = roi_boxes(location, settings, canonical.shape, bounds)
            except (XvertnetError, ValueError) as error:
                reason = " ".join(str(error).split())
                log.warning("rejected %s at roi: %s", image_id, reason)
                rejects.append({"image_id": image_id, "path": str(ingest_path), "stage": "roi", "reason": reason})
                arrays = None  # freed before the next image is read
                continue
            stored = {"canonical": canonical, **{name: crop(canonical, box) for name, box in boxes.items()}}
            mask = None
            if "vertebra_mask" in arrays:
                mask = resample_mask(arrays["vertebra_mask"], canonical.shape)
                stored["vertebra_mask"] = mask
                stored.update({f"mask_{name}": crop(mask, box) for name, box in boxes.items()})
            if "vertebra_levels" in arrays:
                stored["vertebra_levels"] = resample_mask(arrays["vertebra_levels"], canonical.shape)
            if (
                "noise_twin" in arrays
            ):  # the same view with independent noise: enhanced alongside, for the noise measures
                stored["canonical_twin"], _ = to_canonical(arrays["noise_twin"], settings.canonical_height)
            if "bone_target" in arrays:  # the bone prior's target: the training crops only, same boxes
                bone, _ = to_canonical(arrays["bone_target"], settings.canonical_height)
                stored.update({f"bone_{name}": crop(bone, boxes[name]) for name in TRAIN_ROIS if name in boxes})
            record = {
                "split": attrs.get("split", ""),
                "source": attrs.get("source", ""),
                "provenance": attrs.get("provenance", {}),
                "scale": scale,
                "original_shape": list(arrays["image"].shape),
                "boxes": {name: list(box) for name, box in boxes.items()},
                "boxes_original": {name: [round(v / scale, 2) for v in box] for name, box in boxes.items()},
                "spine_centre_x": np.round(location.centre_x, 2).tolist(),
                "upper_y": location.upper_y,
                "lower_y": location.lower_y,
                "lung_rows": list(location.lung_rows) if location.lung_rows else [],
                "vertical_method": location.vertical_method,
                "anatomy_bounds": list(bounds),
            }
            shard.add(image_id, stored, record)
            if index < settings.qc_max_per_shard:
                qc_overlay(canonical, location, boxes, qc_dir / f"{image_id}.png", mask=mask)
            arrays = stored = canonical = None  # one image in memory at a time: freed before the next is read
        counts = shard.count
    write_rejects(rejects, rejects_path)
    return counts, len(rejects)


def write_roi_index(roi_shards, out_path, *, rejects_in=(), rejects_out) -> int:
    """One CSV row per image over all ROI shards (shard, split, scale, boxes), and the merged rejects.

    Reads only HDF5 attributes, not pixels. Returns the number of images indexed.
    """
    import pandas as pd

    from xvertnet.io.ingest import REJECT_COLUMNS
    from xvertnet.io.shard_store import ITEMS, decode_attr, read_shard

    rows = []
    for shard in roi_shards:
        with read_shard(shard) as handle:
            for image_id, group in handle.get(ITEMS, {}).items():
                attrs = {key: decode_attr(value) for key, value in group.attrs.items()}
                provenance = attrs.get("provenance", {})
                row = {
                    "image_id": image_id,
                    "shard": str(shard),
                    "split": attrs.get("split", ""),
                    "source": attrs.get("source", ""),
                    "format": provenance.get("format", ""),
                    "detected_bits": provenance.get("detected_bits", ""),
                    "sha256": provenance.get("sha256", ""),
                    "original_height": attrs["original_shape"][0],
                    "original_width": attrs["original_shape"][1],
                    "scale": attrs["scale"],
                    "has_mask": "vertebra_mask" in group,
                    "vertical_method": attrs.get("vertical_method", ""),
                    "upper_y": attrs.get("upper_y"),
                    "lower_y": attrs.get("lower_y"),
                }
                for name, (top, left, height, width) in attrs["boxes"].items():
                    row.update(
                        {f"{name}_top": top, f"{name}_left": left, f"{name}_height": height, f"{name}_width": width}
                    )
                rows.append(row)
    with atomic_path(out_path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    frames = [pd.read_csv(path, keep_default_na=False) for path in rejects_in if Path(path).stat().st_size > 0]
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(REJECT_COLUMNS))
    with atomic_path(rejects_out) as tmp:
        merged.to_csv(tmp, index=False)
    return len(rows)
