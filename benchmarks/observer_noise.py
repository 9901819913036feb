"""How precisely does one patient's observer AUC measure a method? The design study's harm tolerance, measured.

The design study's do-no-harm rule compares, per choosing patient, a candidate's observer AUC above the heart with
the original's. A tolerance of 0 is stricter than that comparison is precise; the tolerance must come from the
measured spread, before the study runs. This script measures it on a finished ``make detectability`` run (its
``patches.npz`` and ``cases.csv``), which held out the same patients: it splits the noise realisations into two
independent halves (0, 1 and 2, 3), computes every patient's AUC behind and above the heart in each half (templates
trained on that patient's images only, as the design study does), and prints

* per method, observer, patient and region, the two halves' AUCs and their difference;
* the standard error of one per-patient AUC, relative and absolute: RMS(half A - half B) / sqrt 2;
* the standard error of a paired difference (a method minus the original on the same images), which is what the rule
  compares;

each for a study with the halves' realisations (2 per view) and, scaled by 1/sqrt 2 (independent realisations), with
twice as many (4 per view, the design study's setting).

    python benchmarks/observer_noise.py [--run results/detectability] [--methods original xvertnet clahe-0.01]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def half_aucs(patches: dict, cases: pd.DataFrame, settings) -> pd.DataFrame:
    """Per half (realisations 0-1 and 2-3), method, observer, patient and region: the per-patient AUC."""
    from xvertnet.evaluation.observer import OBSERVERS
    from xvertnet.evaluation.observer_selection import patient_aucs

    frames = []
    for half, kept in (("A", (0, 1)), ("B", (2, 3))):
        mask = cases["realisation"].isin(kept).to_numpy()
        part = cases[mask].reset_index(drop=True)
        part["realisation"] = part["realisation"] - kept[0]  # folds 0 and 1 within the half
        table = patient_aucs(
            {name: values[mask] for name, values in patches.items()}, part, settings, observers=OBSERVERS
        )
        frames.append(table.assign(half=half))
    return pd.concat(frames, ignore_index=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("results/detectability"))
    parser.add_argument("--methods", nargs="+", default=["original", "xvertnet", "clahe-0.01"])
    args = parser.parse_args(argv)
    from xvertnet.evaluation.detectability import DetectabilitySettings

    cases = pd.read_csv(args.run / "cases.csv", keep_default_na=False)
    if sorted(cases["realisation"].unique()) != [0, 1, 2, 3]:
        raise SystemExit(f"{args.run}: needs a run with realisations 0-3 (make detectability)")
    with np.load(args.run / "patches.npz") as stored:
        patches = {name: stored[name] / np.float32(255.0) for name in args.methods}
    wide = half_aucs(patches, cases, DetectabilitySettings()).pivot_table(
        index=["method", "observer", "patient", "region"], columns="half", values="auc"
    )
    wide["difference"] = wide["A"] - wide["B"]
    print(wide.round(3).to_string())
    print()
    print("standard errors (2 realisations per view | 4 per view):")
    for region in ("above_heart", "behind_heart"):
        part = wide.xs(region, level="region")
        relative = part["difference"] / ((part["A"] + part["B"]) / 2.0)
        one = np.sqrt(np.mean(part["difference"] ** 2)) / np.sqrt(2.0)
        one_relative = np.sqrt(np.mean(relative**2)) / np.sqrt(2.0)
        print(
            f"  {region}: one per-patient AUC {one:.4f} | {one / np.sqrt(2):.4f} "
            f"(relative {one_relative:.4f} | {one_relative / np.sqrt(2):.4f})"
        )
        original = part.xs("original", level="method")
        for method in [m for m in args.methods if m != "original"]:
            paired = part.xs(method, level="method") - original
            spread = np.sqrt(np.mean((paired["A"] - paired["B"]) ** 2)) / np.sqrt(2.0)
            level = float(original[["A", "B"]].to_numpy().mean())
            print(
                f"    {method} - original: {spread:.4f} | {spread / np.sqrt(2):.4f} "
                f"(relative to the original's mean AUC {level:.3f}: {spread / level:.4f} | "
                f"{spread / level / np.sqrt(2):.4f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
