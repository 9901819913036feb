"""Provenance: the machine line of a result names the vector kernels PyTorch computes with."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import torch; from xvertnet.provenance import cpu_kernel_level, produced_by; "
    "print(cpu_kernel_level().strip(' ()') or '-', torch.backends.cpu.get_cpu_capability(), produced_by()['machine'])"
)


@pytest.mark.parametrize("asked", [None, "avx2", "default", "AVX2"])  # torch ignores upper case
def test_the_kernel_level_is_the_one_torch_chooses(asked):
    env = {key: value for key, value in os.environ.items() if key != "ATEN_CPU_CAPABILITY"}
    if asked:
        env["ATEN_CPU_CAPABILITY"] = asked
    found = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    ours, torchs, machine = found.stdout.strip().split(" ", 2)
    if ours == "-":
        pytest.skip(f"no x86 vector level to read here ({torchs})")
    assert ours == torchs
    assert f"({ours})" in machine and "CPU cores" in machine
