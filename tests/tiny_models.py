"""Method settings small enough for the tests: the same networks as the defaults, a few channels and steps."""

from __future__ import annotations

#: LED's CycleGAN degradation model and conditional diffusion enhancer at their smallest.
TINY_LED = {
    "gan_steps": 3,
    "gan_width": 4,
    "gan_blocks": 1,
    "disc_width": 4,
    "diffusion_steps": 4,
    "validate_every": 2,
    "channels": [8, 8],
    "attention": [False, False],
    "norm_groups": 4,
    "patch": 32,
    "sample_steps": 4,
}
