"""LED's enhancer: a conditional denoising diffusion model (Ho et al. 2020) on degraded/clean pairs.

The network (MONAI's ``DiffusionModelUNet``) sees the noisy clean image and the degraded image concatenated
as two channels and predicts the noise. With the DDPM forward process ``x_t = sqrt(abar_t) x_0 +
sqrt(1 - abar_t) eps`` (MONAI's ``DDPMScheduler.add_noise``, T = 1000, linear betas) the training loss is

    L = E_{x_0, c, t, eps} || eps - eps_theta([x_t, c], t) ||^2                       (Ho et al., Eq. 14)

Sampling uses MONAI's ``DDIMScheduler`` (deterministic, eta = 0) with a configurable number of steps, either
from pure noise (``start_fraction`` 1) or, as LED does, from the condition noised to the intermediate step
``t_s = start_fraction * T``. No sampler is written here; images are in [0, 1], the model works in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def diffusion_unet(
    *, channels=(32, 64, 64), attention=(False, False, False), res_blocks: int = 1, norm_groups: int = 16
):
    """MONAI's ``DiffusionModelUNet`` for two input channels (noisy image, condition) and one output (noise)."""
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(
        spatial_dims=2,
        in_channels=2,
        out_channels=1,
        channels=tuple(channels),
        attention_levels=tuple(attention),
        num_res_blocks=res_blocks,
        norm_num_groups=norm_groups,
        num_head_channels=channels[-1],
    )


def to_model_range(image: torch.Tensor) -> torch.Tensor:
    return image * 2.0 - 1.0


def to_image_range(sample: torch.Tensor) -> torch.Tensor:
    return ((sample + 1.0) / 2.0).clamp(0.0, 1.0)


def noise_prediction_loss(
    network,
    scheduler,
    clean: torch.Tensor,
    condition: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    timesteps: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss above for a batch of (clean, condition) images in [0, 1]; ``timesteps`` and ``noise``
    are drawn (uniform t, standard normal eps) unless given."""
    x0, c = to_model_range(clean), to_model_range(condition)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    if timesteps is None:
        timesteps = torch.randint(
            0, scheduler.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device
        )
    noisy = scheduler.add_noise(x0, noise, timesteps)
    prediction = network(torch.cat([noisy, c], dim=1), timesteps)
    return F.mse_loss(prediction.float(), noise)


def sampling_timesteps(start: int, train_timesteps: int, steps: int) -> list[int]:
    """The DDIM timesteps from ``start`` down in strides of T // steps, the stride MONAI's ``DDIMScheduler.step``
    assumes for the previous timestep (its own ``linspace`` grid is spaced slightly wider, so stepping on it would
    tell the network a wrong noise level, and a start between grid points would be snapped down)."""
    stride = max(train_timesteps // steps, 1)
    return list(range(start, -1, -stride))


@torch.no_grad()
def sample(
    network,
    condition: torch.Tensor,
    *,
    train_timesteps: int = 1000,
    steps: int = 20,
    start_fraction: float = 1.0,
    seed: int = 0,
    autocast=None,
) -> torch.Tensor:
    """Enhanced images (B, 1, H, W) in [0, 1] for the conditions (B, 1, H, W) in [0, 1] by DDIM (eta 0); the same
    seed gives the same output. ``start_fraction`` < 1 starts from the condition noised to that step."""
    import contextlib

    from monai.networks.schedulers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=train_timesteps)
    scheduler.set_timesteps(steps, device=condition.device)
    generator = torch.Generator(device=condition.device).manual_seed(seed)
    c = to_model_range(condition)
    noise = torch.randn(c.shape, generator=generator, device=c.device)
    start = int(round(start_fraction * (train_timesteps - 1)))
    timesteps = sampling_timesteps(start, train_timesteps, steps)
    if start_fraction >= 1.0:
        x = noise
    else:
        x = scheduler.add_noise(c, noise, torch.full((c.shape[0],), timesteps[0], device=c.device, dtype=torch.long))
    for t in timesteps:
        with autocast if autocast is not None else contextlib.nullcontext():
            eps = network(torch.cat([x, c], dim=1), torch.full((c.shape[0],), t, device=c.device, dtype=torch.long))
        x, _ = scheduler.step(eps.float(), t, x)
    return to_image_range(x)
