"""A whole radiograph through the trained XVertNet chain, as ``xvertnet enhance`` and the DICOM node run it.

The chain runs at the models' canonical height (their training scale); the enhancement is then carried over to the
input's full resolution as a smooth local affine map (:func:`xvertnet.model.inference.native_resolution`), so the
output keeps the input's size and detail.
"""

from __future__ import annotations

from pathlib import Path

from xvertnet.config import SHIPPED_MODELS
from xvertnet.errors import InputImageError, XvertnetError


def model_dirs(path: Path | None) -> list[Path]:
    """A model directory (model.json inside) or a folder of iter1, iter2, ... directories, in order (None: the shipped set)."""
    path = SHIPPED_MODELS if path is None else Path(path)
    if (path / "model.json").is_file():
        return [path]
    found = sorted(
        (p for p in path.glob("iter*") if (p / "model.json").is_file()),
        key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0,
    )
    if not found:
        raise XvertnetError(f"{path}: no model.json here and no iter*/model.json below")
    return found


def enhance_image(
    chain,
    image,
    *,
    iterations: int | None = None,
    tile: int = 512,
    overlap: int = 64,
    native_radius: int = 4,
    native_eps: float = 1e-4,
) -> tuple:
    """Enhance one image in [0, 1] with a loaded :class:`~xvertnet.model.inference.Chain`; the output has the input's size.

    Returns (enhanced float32 image, description of what was done).
    """
    from xvertnet.model.inference import native_resolution
    from xvertnet.preprocessing.burned_in import burned_in_mask, fill_burned_in, restore_burned_in
    from xvertnet.preprocessing.spine_location import to_canonical

    canonical, _ = to_canonical(image, chain.canonical_height or image.shape[0])
    # Burned-in labels and border strips are hidden from the network (no glow) and put back: at native
    # resolution as detail added back with gain 1, at working resolution by restore_burned_in.
    burned_in = burned_in_mask(canonical)
    filled = fill_burned_in(canonical, burned_in)
    enhanced = chain.run(filled, iterations=iterations, tile=tile, overlap=overlap)
    description = {
        "software": "xvertnet",
        **chain.describe(),
        "iterations_applied": iterations or len(chain.models),
        "burned_in_pixels": int(burned_in.sum()),
    }
    if enhanced.shape != image.shape:
        enhanced = native_resolution(image, filled, enhanced, radius=native_radius, eps=native_eps, keep=burned_in)
        description["native_resolution"] = {
            "working_height": canonical.shape[0],
            "radius": native_radius,
            "eps": native_eps,
        }
    else:
        enhanced = restore_burned_in(enhanced, canonical, filled)
    return enhanced, description


def enhance_file(model_folders, in_path, out_path, settings=None, *, iterations: int | None = None) -> dict:
    """Enhance one image file with the ``enhance`` settings (:class:`~xvertnet.model.inference.EnhanceSettings`:
    device, precision, tiles, the native-resolution map; None: their defaults); the output has the input's size.
    Returns what was recorded."""
    from xvertnet.io.readers import flat_image_reason, read_image
    from xvertnet.io.writers import write_derived_dicom, write_png16
    from xvertnet.model.inference import Chain, EnhanceSettings

    settings = settings or EnhanceSettings()
    in_path, out_path = Path(in_path), Path(out_path)
    record = read_image(in_path)
    if out_path.suffix.lower() in (".dcm", ".dicom") and record.format != "dicom":
        raise XvertnetError(f"{out_path}: a DICOM output needs a DICOM input, got {record.format}")
    image = record.pixels
    flat = flat_image_reason(image)
    if flat:
        raise InputImageError(in_path, f"{flat}, nothing to enhance")
    chain = Chain(model_folders, device=settings.device, precision=settings.precision)
    enhanced, description = enhance_image(
        chain,
        image,
        iterations=iterations,
        tile=settings.tile,
        overlap=settings.overlap,
        native_radius=settings.native_radius,
        native_eps=settings.native_eps,
    )
    if out_path.suffix.lower() in (".dcm", ".dicom"):
        write_derived_dicom(in_path, enhanced, out_path, description)
    else:
        write_png16(out_path, enhanced)
    return description
