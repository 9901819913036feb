"""Seconds per training step and per inference of XVertNet, by size, width and precision, in one run.

A training step is forward + L1 + L2 + backward + Adam on one batch; inference is a forward
pass without gradients. fp32 runs in the default memory format; "cl+bf16" runs channels_last
with bf16 autocast (CPU) or the AMP dtype (CUDA), losses in fp32. Depth 4 (the paper's).

    python benchmarks/train_infer.py                       # 256 and 512, widths 8 16 64, batch 1
    python benchmarks/train_infer.py --sizes 256 --widths 8 16 --batch 8 --repeats 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from xvertnet.model.device import autocast, resolve_precision, select_device
from xvertnet.model.losses import XVertNetLoss
from xvertnet.model.network import ModelConfig, XVertNet, count_parameters


def _time(function, repeats: int) -> float:
    function()  # warm-up (allocations, kernel selection)
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def measure(
    size: int, width: int, mode: str, *, batch: int, depth: int, repeats: int, device
) -> tuple[float, float, int]:
    model = XVertNet(ModelConfig(base_width=width, depth=depth)).to(device)
    dtype = None
    inputs = torch.rand(batch, 1, size, size, device=device)
    hfc = torch.randn(batch, 1, size, size, device=device) * 0.05
    if mode == "cl+bf16":
        model = model.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        hfc = hfc.contiguous(memory_format=torch.channels_last)
        dtype = resolve_precision(device, "auto")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    loss_fn = XVertNetLoss()

    def train_step():
        model.train()
        with autocast(device, dtype):
            output, features = model(inputs, hfc)
        loss = loss_fn(output, hfc, features, with_feature_loss=True)["total"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    @torch.no_grad()
    def infer():
        model.eval()
        with autocast(device, dtype):
            model(inputs, hfc)

    return _time(train_step, repeats), _time(infer, repeats), count_parameters(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 64])
    parser.add_argument("--modes", nargs="+", default=["fp32", "cl+bf16"], choices=["fp32", "cl+bf16"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown (a docs table) to this file")
    args = parser.parse_args()
    rows = {}
    device = select_device(args.device)
    print(
        f"device {device}, threads {torch.get_num_threads()}, batch {args.batch}, depth {args.depth}, torch {torch.__version__}"
    )
    print(f"{'size':>5} {'width':>5} {'params':>10} {'mode':>8} {'train s/step':>13} {'infer s':>9}")
    for size in args.sizes:
        for width in args.widths:
            for mode in args.modes:
                train, infer, parameters = measure(
                    size, width, mode, batch=args.batch, depth=args.depth, repeats=args.repeats, device=device
                )
                print(f"{size:>5} {width:>5} {parameters:>10,} {mode:>8} {train:>13.3f} {infer:>9.3f}", flush=True)
                rows.setdefault((size, width, parameters), {})[mode] = (train, infer)
    if args.markdown:
        from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

        lines = [
            "| size | base width | parameters | "
            + " | ".join(f"{mode} train s/step | {mode} inference s" for mode in args.modes)
            + " |",
            "|---|---|---|" + "---|---|" * len(args.modes),
        ]
        for (size, width, parameters), by_mode in rows.items():
            cells = " | ".join(f"{by_mode[mode][0]:.3g} | {by_mode[mode][1]:.3g}" for mode in args.modes)
            lines.append(f"| {size} | {width} | {parameters / 1e6:.2f} M | {cells} |")
        note = (
            f"Device {device}, {torch.get_num_threads()} threads, batch {args.batch}, depth {args.depth}, torch "
            f"{torch.__version__}; mean of {args.repeats} steps after a warm-up; cl+bf16 = channels_last with "
            f"autocast to {resolve_precision(device, 'auto')} (what precision `auto` gives on this device)."
        )
        write_run_table(args.markdown, benchmark_command(), "\n".join(lines) + "\n\n" + note)


if __name__ == "__main__":
    main()
