"""XVertNet at the paper's scale on one GPU: training step time, images per second, memory, bf16 agreement,
whole-image enhancement and the extrapolated wall time of the paper's schedule.

At the paper's scale (base width 64, depth 4, 512 x 512 crops, batch 8), for fp32 and bf16 autocast:

* seconds per training step (forward, L1 + L2 of Eq. 14, backward, Adam) and training crops per second;
* peak GPU memory of training;
* the agreement of bf16 and fp32: the same initial weights trained for ``--agreement-steps`` steps on the
  same batches, then both models applied to held-out inputs: the mean absolute and the maximum
  difference of the outputs (intensities in [0, 1]);
* whole-image enhancement of a 2048 x 2048 radiograph (the paper's canonical height) through the
  chain's tiled inference (512 tiles, 64 overlap): seconds per image;
* the paper's full schedule extrapolated from the measured step time: 400 epochs (200 L1 + 200 L1+L2),
  two iterations, two training crops per image of the public data sets' training images.

On a machine without CUDA it says so in one line and exits 0, unless ``--device cpu`` asks for the
CPU (with ``--tiny``: width 8, 64 x 64 crops, batch 2, a 256 x 256 image; what the test suite runs).

    python benchmarks/gpu.py                 # on a GPU node: about 3-5 minutes
    python benchmarks/gpu.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np
import torch

from xvertnet.model.device import autocast, prepare_model, select_device, to_device
from xvertnet.model.losses import XVertNetLoss
from xvertnet.model.network import ModelConfig, XVertNet, count_parameters

#: Training images of the public data sets (manifests' train splits at the paper's 70 % share), for the extrapolation.
PUBLIC_TRAINING_IMAGES = {"NIH ChestX-ray14": 78_484, "CheXpert": 156_726, "JSRT": 173, "Montgomery": 97}
#: The paper's schedule: epochs per iteration (200 L1, then 200 L1 + L2 for large data sets), iterations, crops per image.
PAPER_EPOCHS, PAPER_ITERATIONS, CROPS_PER_IMAGE = 400, 2, 2


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches(
    count: int, batch: int, size: int, device: torch.device, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Smooth random 'radiograph' crops and their high-frequency guide, on the device."""
    generator = torch.Generator().manual_seed(seed)
    found = []
    for _ in range(count):
        coarse = torch.rand(batch, 1, size // 16, size // 16, generator=generator)
        image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(
            0, 1
        )
        guide = image - torch.nn.functional.avg_pool2d(image, 9, stride=1, padding=4)
        found.append((to_device(image, device), to_device(guide, device)))
    return found


def train_steps(model, data, device, dtype, *, steps: int, phase2: bool = True) -> float:
    """Train ``steps`` steps on ``data`` (cycled); return seconds per step after one warm-up step."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    loss_fn = XVertNetLoss()
    model.train()

    def step(index: int) -> None:
        inputs, guide = data[index % len(data)]
        with autocast(device, dtype):
            output, features = model(inputs, guide)
        loss = loss_fn(output.float(), guide, features, with_feature_loss=phase2)["total"]
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    step(0)
    synchronise(device)
    start = time.perf_counter()
    for index in range(1, steps + 1):
        step(index)
    synchronise(device)
    return (time.perf_counter() - start) / steps


@torch.no_grad()
def outputs(model, data, device, dtype) -> np.ndarray:
    model.eval()
    found = []
    for inputs, guide in data:
        with autocast(device, dtype):
            found.append(model(inputs, guide)[0].float().cpu().numpy())
    return np.concatenate(found)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default; exits 0 without it), cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny size for a CPU check")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per precision")
    parser.add_argument("--agreement-steps", type=int, default=50)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "benchmarks/gpu.py: no CUDA device on this machine (torch.cuda.is_available() is False); nothing measured"
        )
        return 0
    device = select_device(args.device)
    width, size, batch, image_side = (8, 64, 2, 256) if args.tiny else (64, 512, 8, 2048)
    steps, agreement_steps = (2, 3) if args.tiny else (args.steps, args.agreement_steps)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device {name}, torch {torch.__version__}, base width {width}, depth 4, crops {size} x {size}, batch {batch}"
    )
    config = ModelConfig(base_width=width, depth=4)
    torch.manual_seed(0)
    initial = XVertNet(config)
    print(f"parameters {count_parameters(initial):,}")
    data = batches(4, batch, size, device)
    held_out = batches(2, batch, size, device, seed=1)
    results = {}
    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        model = prepare_model(copy.deepcopy(initial), device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = train_steps(model, data, device, dtype, steps=steps)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        results[label] = seconds
        print(
            f"{label}: {seconds:.3f} s per training step, {batch / seconds:.1f} crops/s, peak GPU memory {peak:.2f} GiB",
            flush=True,
        )
    # bf16 against fp32 from the same weights on the same batches
    trained = {}
    for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        model = prepare_model(copy.deepcopy(initial), device)
        train_steps(model, data, device, dtype, steps=agreement_steps)
        trained[label] = outputs(model, held_out, device, dtype)
    difference = np.abs(trained["bf16"] - trained["fp32"])
    print(
        f"bf16 vs fp32 after {agreement_steps + 1} steps: mean |difference| {difference.mean():.4f}, "
        f"max {difference.max():.4f} (outputs in [0, 1])"
    )
    # whole-image enhancement through the chain's tiled inference
    from xvertnet.model.inference import Chain

    model = prepare_model(copy.deepcopy(initial), device).eval()
    chain = Chain.__new__(Chain)  # the tiled inference of a trained chain, on this untrained model (no model folder)
    chain.device, chain.batch_size, chain.dtype = (
        device,
        8,
        torch.bfloat16 if results["bf16"] < results["fp32"] else None,
    )
    rng = np.random.default_rng(0)
    image = np.clip(rng.random((image_side // 32, image_side // 32)).repeat(32, 0).repeat(32, 1), 0, 1).astype(
        np.float32
    )
    guide = (image - image.mean()).astype(np.float32)
    tile = min(512, image_side)
    chain.predict_tiled(model, image[None], guide[None], tile=tile, overlap=64)  # warm-up
    synchronise(device)
    start = time.perf_counter()
    chain.predict_tiled(model, image[None], guide[None], tile=tile, overlap=64)
    synchronise(device)
    whole = time.perf_counter() - start
    print(
        f"whole image {image_side} x {image_side}: {whole:.2f} s per network pass (tiles {tile}, overlap 64; "
        "preprocessing on the CPU not included)"
    )
    best = min(results.values())
    for dataset, images in PUBLIC_TRAINING_IMAGES.items():
        steps_total = PAPER_EPOCHS * PAPER_ITERATIONS * images * CROPS_PER_IMAGE / batch
        print(
            f"paper schedule on {dataset} ({images:,} training images): {steps_total * best / 3600:,.1f} GPU-hours "
            f"at {best:.3f} s per step"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
