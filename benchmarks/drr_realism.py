"""How much the demo DRRs look like real chest radiographs: regions, histogram, noise and the vertebral scale.

For the AP DRR of every chest CT patient at the standard dose, rendered twice (``raw log``: the
detector's log signal, plainly stretched, as the demo's "original" was before the
for-presentation step existed; ``presented``: the demo's for-presentation image), and for the real
radiographs at hand (RG1_UNCR.dcm of pydicom-data and the SIIM and NIH images of
``../shared/data/real_cxr``), each at the canonical height of ``config.yaml`` and its own
1st-99th percentile window, this prints:

* region means and ratios (spine/lung, heart/lung, the spine behind the heart minus the heart
  beside it), of regions placed from the spine centre line and lung rows the ROI stage finds:
  ``spine`` (upper half of the lung rows), ``spine_heart`` (lower third), ``lung`` (both lung
  fields, middle third), ``heart`` (the heart shadow on the patient's left, lower third);
* the histogram's skewness and kurtosis;
* ``fine``: the finest-scale energy, std(image - G_1 * image) / std(image) over the lung rows
  (G_1 a Gaussian of 1 pixel: noise and the sharpest detail);
* ``body_band``: the energy in the band of a vertebral body (difference of Gaussians of a
  sixteenth of the height over 8 and over 2), as a share of the image's spread;
* ``beta``: the exponent of the power spectrum P(f) ~ f^-beta of the lung rows between 1/64 and
  1/4 cycles per pixel (anatomical background of chest radiographs: beta about 3);

and writes ``docs/figures/drr_realism.png``: every image at its window with the regions, its
histogram and the radially averaged power spectra of all images on one plot.

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
from xvertnet.demo.demo_data import DemoSettings, Patient, View, build_demo_data, real_radiograph_path
from xvertnet.demo.presentation import PresentationSettings
from xvertnet.io.readers import read_image
from xvertnet.metrics.displayed import display
from xvertnet.preprocessing.spine_location import RoiSettings, locate_spine, to_canonical

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


def radial_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum (frequencies in cycles per pixel, power normalised to sum 1) of a
    detrended, Hann-windowed square patch."""
    size = min(image.shape)
    patch = image[:size, :size] - image[:size, :size].mean()
    window = np.outer(np.hanning(size), np.hanning(size))
    power = np.abs(np.fft.fftshift(np.fft.fft2(patch * window))) ** 2
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(size)), np.fft.fftshift(np.fft.fftfreq(size)), indexing="ij")
    radius = np.hypot(fy, fx)
    bins = np.linspace(1.0 / size, 0.5, 40)
    index = np.digitize(radius.ravel(), bins)
    spectrum = np.array(
        [power.ravel()[index == i].mean() if (index == i).any() else np.nan for i in range(1, len(bins))]
    )
    return 0.5 * (bins[1:] + bins[:-1]), spectrum / np.nansum(spectrum)


def describe(name: str, image: np.ndarray, settings: RoiSettings) -> tuple[dict, np.ndarray, dict, tuple]:
    from scipy import ndimage

    from xvertnet.metrics.task import band_pass, body_scale

    canonical, _ = to_canonical(image, settings.canonical_height)
    shown = display(canonical)
    masks = regions(canonical, settings)
    means = {region: float(shown[mask].mean()) for region, mask in masks.items()}
    lung_rows = masks["lung"].any(axis=1) | masks["spine"].any(axis=1) | masks["spine_heart"].any(axis=1)
    rows = slice(int(np.argmax(lung_rows)), len(lung_rows) - int(np.argmax(lung_rows[::-1])))
    band = shown[rows]
    spread = float(band.std())
    fine = float((band - ndimage.gaussian_filter(shown, 1.0)[rows]).std()) / spread
    body = float(band_pass(shown, body_scale(shown.shape[0]))[rows].std()) / spread
    frequency, spectrum = radial_spectrum(band[:, (band.shape[1] - min(band.shape)) // 2 :])
    fit = (frequency >= 1 / 64) & (frequency <= 1 / 4) & np.isfinite(spectrum) & (spectrum > 0)
    beta = -float(np.polyfit(np.log(frequency[fit]), np.log(spectrum[fit]), 1)[0])
    row = {
        "image": name,
        **{region: round(value, 3) for region, value in means.items()},
        "spine/lung": round(means["spine"] / means["lung"], 2),
        "heart/lung": round(means["heart"] / means["lung"], 2),
        "spine_heart-heart": round(means["spine_heart"] - means["heart"], 3),
        "skewness": round(float(stats.skew(shown.ravel())), 2),
        "kurtosis": round(float(stats.kurtosis(shown.ravel())), 2),
        "fine": round(fine, 3),
        "body_band": round(body, 3),
        "beta": round(beta, 2),
    }
    return row, shown, masks, (frequency, spectrum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", nargs="+", default=["lidc0001", "tschest", "lung1", "lung2"])
    parser.add_argument("--figure", default=str(REPO / "docs/figures/drr_realism.png"))
    parser.add_argument(
        "--table",
        default=str(REPO / "results/benchmarks/drr_realism.md"),
        help="the table as Markdown, headed by the commit and machine (`xvertnet docs-tables` copies it into docs/)",
    )
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = load_config(REPO / "config.yaml", REPO / "workflow/schemas/config.schema.yaml")
    roi_settings = RoiSettings.from_config(config["roi"])
    physical = DemoSettings.from_config(config["demo"])
    raw = dataclasses.replace(
        physical, presentation=PresentationSettings(latitude=1.0, exponent=1.0, edge_gain=1.0, tone_slope=0.0)
    )
    images = []
    with tempfile.TemporaryDirectory() as folder:
        for label, settings in (("raw log", raw), ("presented", physical)):
            settings = dataclasses.replace(
                settings,
                patients=tuple(Patient(name, split="test", views=("ap",)) for name in args.patients),
                views=(View("ap", split="test"),),
                conditions=("standard",),
                include_real=False,
            )
            settings = dataclasses.replace(settings, noise_twins=False)
            out = Path(folder) / label.replace(" ", "_")
            manifest = build_demo_data(out, out / "manifest.csv", settings)
            for row in manifest.itertuples():
                images.append((f"{row.patient} {label}", read_image(out / row.path).pixels))
    images.append(("RG1_UNCR (real CR)", read_image(real_radiograph_path()).pixels))
    for path in sorted(REAL.glob("*")):
        if path.suffix in (".png", ".dcm"):
            images.append((f"{path.stem} (real)", read_image(path).pixels))

    rows, shown_all = [], []
    for name, pixels in images:
        row, shown, masks, spectrum = describe(name, pixels, roi_settings)
        rows.append(row)
        shown_all.append((name, shown, masks, spectrum))
    columns = [
        "image",
        *REGIONS,
        "spine/lung",
        "heart/lung",
        "spine_heart-heart",
        "skewness",
        "kurtosis",
        "fine",
        "body_band",
        "beta",
    ]
    from xvertnet.provenance import made_by

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows]
    print("\n".join(lines))
    note = (
        f"AP DRRs of {', '.join(args.patients)} at the standard dose (raw log and presented) and the real radiographs "
        "at hand, each at the canonical height of config.yaml and its own 1st-99th percentile window."
    )
    table = Path(args.table)
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(made_by("python benchmarks/drr_realism.py") + "\n\n" + note + "\n\n" + "\n".join(lines) + "\n")
    print("wrote", table)

    count = len(shown_all)
    figure, axes = plt.subplots(3, count, figsize=(2.3 * count, 8.4), gridspec_kw={"height_ratios": [3, 1.2, 2.2]})
    spectra = figure.add_subplot(3, 1, 3)
    for axis in axes[2]:
        axis.remove()
    colours = {"spine": "yellow", "spine_heart": "orange", "lung": "cyan", "heart": "magenta"}
    for column, (name, shown, masks, (frequency, spectrum)) in enumerate(shown_all):
        style = "--" if "raw" in name else ":" if "presented" not in name else "-"
        spectra.loglog(frequency, spectrum, style, label=name, linewidth=1.2 if "presented" in name else 1.8)
        axis = axes[0, column]
        axis.imshow(shown, cmap="gray", vmin=0, vmax=1)
        for region, mask in masks.items():
            axis.contour(mask, levels=[0.5], colors=colours[region], linewidths=0.6)
        axis.set_title(name, fontsize=7)
        axis.axis("off")
        axes[1, column].hist(shown.ravel(), bins=64, range=(0, 1), color="grey")
        axes[1, column].set_yticks([])
        axes[1, column].tick_params(labelsize=6)
    spectra.set_xlabel("cycles per pixel (canonical height)", fontsize=8)
    spectra.set_ylabel("normalised power", fontsize=8)
    spectra.axvspan(1 / 64, 1 / 4, color="0.92")
    spectra.legend(fontsize=6, ncol=4)
    spectra.set_title(
        "Radially averaged power spectra of the lung rows (dashed: raw log DRRs; solid: presented DRRs; "
        "dotted: real radiographs; shaded: the band of the beta fit)",
        fontsize=8,
    )
    figure.suptitle(
        "DRRs (raw log and for presentation) beside real radiographs, each at its 1st-99th percentile window; "
        "regions: spine (yellow), spine behind the heart (orange), lung (cyan), heart (magenta)",
        fontsize=8,
    )
    figure.tight_layout()
    figure.savefig(args.figure, dpi=90)
    print("wrote", args.figure)


if __name__ == "__main__":
    main()
