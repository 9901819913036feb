"""A training run's record: the per-epoch log (``train_log.csv``), its loss-curve figure, and the validation
spikes counted from it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from xvertnet.io.atomic import atomic_path

#: Loss terms summed per epoch (a term that is off stays NaN in the log).
TERMS = ("total", "l1", "l2", "blind_spot", "band_pass", "bone", "displayed_cnr")

LOG_COLUMNS = (
    "epoch",
    "phase",
    "train_loss",
    *[f"train_{t}" for t in TERMS[1:]],
    "val_loss",
    *[f"val_{t}" for t in TERMS[1:]],
    "seconds",
)

#: An epoch whose validation loss exceeds this multiple of its phase's median is a spike (model.json lists them).
SPIKE_FACTOR = 10.0


def write_log(rows: list[dict], path: Path) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=list(LOG_COLUMNS)).to_csv(tmp, index=False)


def loss_curve_figure(rows: list[dict], path: Path, *, title: str = "") -> None:
    """Training and validation loss per epoch on a log axis (one spike does not flatten the other curves),
    the phase change and validation spikes marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in rows]
    figure, axis = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    axis.plot(epochs, [row["train_loss"] for row in rows], label="train")
    if any(not math.isnan(row["val_loss"]) for row in rows):
        axis.plot(epochs, [row["val_loss"] for row in rows], label="validation")
    axis.plot(epochs, [row["train_l1"] for row in rows], "--", linewidth=0.8, label="train L1 (1 - GC)")
    changes = [row["epoch"] for previous, row in zip(rows, rows[1:]) if row["phase"] != previous["phase"]]
    for epoch in changes:
        axis.axvline(epoch - 0.5, color="grey", linestyle=":", label="L1 + L2 from here")
    spikes = set(validation_spikes(rows))
    if spikes:
        axis.plot(
            [row["epoch"] for row in rows if row["epoch"] in spikes],
            [row["val_loss"] for row in rows if row["epoch"] in spikes],
            "rx",
            label="validation spike (> 10x phase median)",
        )
    values = [row[key] for row in rows for key in ("train_loss", "val_loss", "train_l1") if math.isfinite(row[key])]
    if values and min(values) > 0:
        axis.set_yscale("log")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss (log scale)" if axis.get_yscale() == "log" else "loss")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)


def validation_spikes(rows: list[dict], factor: float = SPIKE_FACTOR) -> list[int]:
    """Epochs whose validation loss exceeds ``factor`` times the median validation loss of their phase."""
    spikes = []
    for phase in sorted({row["phase"] for row in rows}):
        values = [
            (row["epoch"], row["val_loss"]) for row in rows if row["phase"] == phase and math.isfinite(row["val_loss"])
        ]
        if len(values) < 3:
            continue
        median = float(np.median([value for _, value in values]))
        spikes += [epoch for epoch, value in values if value > factor * abs(median) and value - median > 1e-6]
    return spikes
