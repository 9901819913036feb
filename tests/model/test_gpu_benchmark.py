"""benchmarks/gpu.py: one line and exit 0 without CUDA; every figure printed on the CPU at a tiny size."""

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_in_one_line_and_exits_0(capsys):
    if torch.cuda.is_available():  # pragma: no cover - a GPU machine measures instead
        return
    assert _module().main([]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "no CUDA device" in lines[0]


def test_a_tiny_cpu_run_prints_every_figure(capsys):
    assert _module().main(["--device", "cpu", "--tiny"]) == 0
    out = capsys.readouterr().out
    for needle in ("fp32:", "bf16:", "crops/s", "bf16 vs fp32 after", "whole image 256 x 256", "paper schedule on NIH"):
        assert needle in out
    mean = float(out.split("mean |difference| ")[1].split(",")[0])
    assert 0 <= mean < 0.05  # bf16 autocast stays close to fp32 after a few steps
