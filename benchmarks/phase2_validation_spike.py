"""Why the validation loss of the recommended configuration jumps when phase 2 starts.

The iteration-1 log of the `xvertnet` model set shows the validation L2 (feature) loss at 20 and
428 in the first two epochs of phase 2 (L1 + L2) before it falls back below 0.25. This trains that
configuration (anchored head, base 8, depth 3, 40 + 8 epochs) on the demo's prep shards with the
training code unchanged and, after every epoch, validates twice: as training does (eval mode, the
BatchNorm layers' running statistics) and with the same weights using the validation batches' own
statistics (a copy in train mode with BatchNorm momentum 0, so nothing it sees is kept). It prints
both for every epoch of phase 2.

    python benchmarks/phase2_validation_spike.py [results/demo/prep]   # after make demo; about 3.5 min

It then does the same with ``train.refresh_batchnorm`` on (the statistics re-estimated over the
training crops before every validation) and prints the worst phase-2 epoch of each run.

Measured here (2 CPU cores, 87 s): eval-mode validation L2 20.0 and 428.2 in the first two
phase-2 epochs, 0.22 and 0.11 in the next two; with batch statistics 0.040, 0.047, 0.036, 0.014.
Eval-mode L1 is 0.18, 0.52, 0.45, 0.34, 0.29, 0.26 against 0.13-0.16 with batch statistics and
meets it only from the seventh epoch. The weights are fine; the BatchNorm running statistics
(momentum 0.1) lag behind the features, which change fast once the L2 term starts, so for about
six epochs the model as deployed (eval mode) is worse than its weights. Best-epoch selection
(the demo's model: epoch 57 of 60) does not pick those epochs.
"""

from __future__ import annotations

import copy
import glob
import json
import sys
import tempfile

import torch

import xvertnet.model.training as training

_run_epoch = training._run_epoch
rows = []
REFRESH = [False]


def _validate_twice(model, loader, loss_fn, settings, step=None):
    result = _run_epoch(model, loader, loss_fn, settings, step)
    phase = settings.phase
    if step is None:  # a validation pass
        twin = copy.deepcopy(model)
        for module in twin.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 0.0
        batch_statistics = (torch.optim.SGD(twin.parameters(), lr=0.0), torch.amp.GradScaler("cpu", enabled=False))
        own = _run_epoch(twin, loader, loss_fn, settings, batch_statistics)
        rows.append(
            {
                "refresh_batchnorm": REFRESH[0],
                "epoch": len(rows) + 1,
                "phase": phase,
                "val_l1_eval": result["l1"],
                "val_l2_eval": result["l2"],
                "val_l1_batch_stats": own["l1"],
                "val_l2_batch_stats": own["l2"],
            }
        )
        if phase == 2:
            print(
                json.dumps(
                    {key: round(value, 5) if isinstance(value, float) else value for key, value in rows[-1].items()}
                ),
                flush=True,
            )
    return result


def main() -> int:
    folder = sys.argv[1] if len(sys.argv) > 1 else "results/demo/prep"
    shards = sorted(glob.glob(f"{folder}/*.h5"))
    if not shards:
        print(f"no prep shards in {folder}: run make demo first", file=sys.stderr)
        return 2
    training._run_epoch = _validate_twice
    for refresh in (False, True):  # as trained until now, then with the statistics re-estimated before validation
        REFRESH[0] = refresh
        rows.clear()
        config = training.TrainConfig.from_config(
            {
                "phase1_epochs": 40,
                "phase2_epochs": 8,
                "patience": 15,
                "base_width": 8,
                "depth": 3,
                "output_head": "anchored",
                "refresh_batchnorm": refresh,
            }
        )
        with tempfile.TemporaryDirectory() as out_dir:
            training.train_iteration(shards, out_dir, config, progress=False)
        worst = max(rows, key=lambda row: row["val_l2_eval"] if row["phase"] == 2 else -1)
        print(
            f"refresh_batchnorm={refresh}: worst eval-mode phase-2 validation L2 {worst['val_l2_eval']:.4f} "
            f"(batch statistics {worst['val_l2_batch_stats']:.4f}) at epoch {worst['epoch']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
