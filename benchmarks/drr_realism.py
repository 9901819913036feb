"""How much the demo DRRs look like real chest radiographs (issue 16, item 3).

For the AP DRR of every chest CT patient, projected once with the plain model (attenuation
proportional to HU + 1000, no scatter) and once with the demo's physical model (bone boost,
scatter, log response; ``xvertnet.demo_data``), and for the real radiographs at hand
(RG1_UNCR.dcm of pydicom-data and ``../shared/data/real_cxr``), this prints the mean displayed
intensity (each image at its own 1st-99th percentile window) of four regions placed from the
spine centre line and lung rows that the ROI stage finds:

* ``spine``: the spine strip in the upper half of the lung rows (between the lungs),
* ``spine_heart``: the spine strip in the lower third of the lung rows (behind the heart),
* ``lung``: both lung fields beside the spine, middle third of the lung rows,
* ``heart``: the heart shadow on the patient's left of the spine, lower third of the lung rows,

their ratios to the lung, the spine-behind-heart contrast against the heart beside it, and the
histogram's skewness; and writes ``docs/figures/drr_realism.png`` (the images with the regions,
and the histograms). The ROI stage's settings of ``config.yaml`` are used.

    python benchmarks/drr_realism.py [--patients lidc0001 tschest lung1 lung2] [--figure PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

from xvertnet.config import load_config
from xvertnet.demo_data import DemoSettings, Patient, View, build_demo_data, real_radiograph_path
from xvertnet.metrics.displayed import display
from xvertnet.readers import read_image
from xvertnet.roi import RoiSettings, locate_spine, to_canonical

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real_cxr"
REGIONS = ("spine", "spine_heart", "lung", "heart")


def regions(image: np.ndarray, settings: RoiSettings) -> dict[str, np.ndarray]:
    """Boolean masks of the four regions (module docstring) in a canonical image."""
    height, width = image.shape
    location = locate_spine(image, settings)
    top, bottom = location.lung_rows or (int(0.1 * height), int(0.8 * height))
    span = bottom - top
    rows = np.arange(height)[:, None]
    columns = np.arange(width)[None, :]
    centre = location.centre_x[:, None]
    half = max(4, int(round(settings.spine_width_fraction * height / 2)))
    strip = np.abs(columns - centre) <= half
    upper = (rows >= top) & (rows < top + span // 2)
    middle = (rows >= top + span // 3) & (rows < top + 2 * span // 3)
    lower = (rows >= top + 2 * span // 3) & (rows <= bottom)
    offset = np.abs(columns - centre)
    return {
        "spine": strip & upper,
        "spine_heart": strip & lower,
        "lung": (offset >= 0.17 * width) & (offset <= 0.30 * width) & middle,
        # the patient's left is the viewer's right (columns grow towards the patient's left)
        "heart": (columns - centre >= 3 * half) & (columns - centre <= 3 * half + 0.10 * width) & lower,
    }


def describe(name: str, image: np.ndarray, settings: RoiSettings) -> tuple[dict, np.ndarray, dict]:
    canonical, _ = to_canonical(image, settings.canonical_height)
    shown = display(canonical)
    masks = regions(canonical, settings)
    means = {region: float(shown[mask].mean()) for region, mask in masks.items()}
    row = {"image": name, **{region: round(value, 3) for region, value in means.items()},
           "spine/lung": round(means["spine"] / means["lung"], 2), "heart/lung": round(means["heart"] / means["lung"], 2),
           "spine_heart-heart": round(means["spine_heart"] - means["heart"], 3),
           "skewness": round(float(stats.skew(shown.ravel())), 2)}
    return row, shown, masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", nargs="+", default=["lidc0001", "tschest", "lung1", "lung2"])
    parser.add_argument("--figure", default=str(REPO / "docs/figures/drr_realism.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = load_config(REPO / "config.yaml", REPO / "workflow/schemas/config.schema.yaml")
    roi_settings = RoiSettings.from_config(config["roi"])
    physical = DemoSettings.from_config(config["demo"])
    plain = dataclasses.replace(physical, bone_boost=1.0, scatter_fraction=0.0, tone_curve=0.0)
    images = []
    with tempfile.TemporaryDirectory() as folder:
        for label, settings in (("plain", plain), ("physical", physical)):
            settings = dataclasses.replace(settings, patients=tuple(Patient(name, split="test", views=("ap",)) for name in args.patients),
                                           views=(View("ap", split="test"),), conditions=("standard",), include_real=False)
            manifest = build_demo_data(Path(folder) / label, Path(folder) / label / "manifest.csv", settings)
            for row in manifest.itertuples():
                images.append((f"{row.patient} {label}", read_image(Path(folder) / label / row.path).pixels))
    images.append(("RG1_UNCR (real CR)", read_image(real_radiograph_path()).pixels))
    for path in sorted(REAL.glob("*")):
        if path.suffix in (".png", ".dcm"):
            images.append((f"{path.stem} (real)", read_image(path).pixels))

    rows, shown_all = [], []
    for name, pixels in images:
        row, shown, masks = describe(name, pixels, roi_settings)
        rows.append(row)
        shown_all.append((name, shown, masks))
    columns = ["image", *REGIONS, "spine/lung", "heart/lung", "spine_heart-heart", "skewness"]
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[column]) for column in columns))

    count = len(shown_all)
    figure, axes = plt.subplots(2, count, figsize=(2.6 * count, 6.2), gridspec_kw={"height_ratios": [3, 1.4]})
    colours = {"spine": "yellow", "spine_heart": "orange", "lung": "cyan", "heart": "magenta"}
    for column, (name, shown, masks) in enumerate(shown_all):
        axis = axes[0, column]
        axis.imshow(shown, cmap="gray", vmin=0, vmax=1)
        for region, mask in masks.items():
            axis.contour(mask, levels=[0.5], colors=colours[region], linewidths=0.6)
        axis.set_title(name, fontsize=7)
        axis.axis("off")
        axes[1, column].hist(shown.ravel(), bins=64, range=(0, 1), color="grey")
        axes[1, column].set_yticks([])
        axes[1, column].tick_params(labelsize=6)
    figure.suptitle("DRRs (plain and physical projection) beside real radiographs, each at its 1st-99th percentile window; "
                    "regions: spine (yellow), spine behind the heart (orange), lung (cyan), heart (magenta)", fontsize=8)
    figure.tight_layout()
    figure.savefig(args.figure, dpi=90)
    print("wrote", args.figure)


if __name__ == "__main__":
    main()
