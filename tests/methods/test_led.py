"""LED: the CycleGAN's networks and losses, the diffusion training target, the sampler, the quality sets,
the CPU fallback, and what the conditional model does with an already clean condition (measured)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from scipy import ndimage
from tiny_models import TINY_LED

from xvertnet.methods import get_method
from xvertnet.methods.led.conditional_diffusion import diffusion_unet, noise_prediction_loss, sample
from xvertnet.methods.led.cyclegan import (
    CycleGan,
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    cycle_consistency_loss,
    lsgan_loss,
    receptive_field,
)
from xvertnet.methods.led.method import quality_sets


def test_generator_and_discriminator_shapes():
    generator = ResnetGenerator(width=8, blocks=2)
    x = torch.rand(2, 1, 64, 48) * 2 - 1
    y = generator(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    discriminator = PatchDiscriminator(width=8)
    # 64 px: /2 /2 /2 = 8, then two 4 x 4 convolutions at stride 1 with padding 1: 8 -> 7 -> 6
    assert discriminator(torch.rand(2, 1, 64, 64)).shape == (2, 1, 6, 6)
    assert discriminator(torch.rand(1, 1, 256, 256)).shape == (1, 1, 30, 30)  # the CycleGAN paper's 30 x 30 at 256 px


def test_the_patchgan_sees_70_by_70_pixels():
    """From the kernels and strides, and measured: the input pixels that one output depends on (without the
    InstanceNorm, which couples every pixel of an image through its mean and variance)."""
    discriminator = PatchDiscriminator(width=4)
    assert receptive_field(discriminator) == 70
    for index, module in enumerate(discriminator.model):
        if isinstance(module, torch.nn.InstanceNorm2d):
            discriminator.model[index] = torch.nn.Identity()
    torch.manual_seed(0)
    x = torch.rand(1, 1, 160, 160, requires_grad=True)
    out = discriminator(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = np.nonzero(x.grad[0, 0].abs().numpy() > 0)
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_cycle_gan_losses_by_hand():
    original = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    reconstructed = torch.tensor([[[[1.0, 1.0], [2.0, 1.0]]]])
    assert float(cycle_consistency_loss(original, reconstructed)) == pytest.approx((1 + 0 + 0 + 2) / 4)
    prediction = torch.tensor([0.5, 1.0, 0.0])
    assert float(lsgan_loss(prediction, True)) == pytest.approx((0.25 + 0 + 1) / 3)
    assert float(lsgan_loss(prediction, False)) == pytest.approx((0.25 + 1 + 0) / 3)
    torch.manual_seed(0)
    gan = CycleGan(generator_width=4, blocks=1, discriminator_width=4)
    high, low = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    terms, fake_low, fake_high = gan.generator_step(high, low, cycle_weight=10.0, identity_weight=0.5)
    value = {k: float(v.detach()) for k, v in terms.items()}
    assert value["total"] == pytest.approx(value["gan"] + 10 * value["cycle"] + 5 * value["identity"], rel=1e-6)
    with torch.no_grad():
        expected_cycle = (gan.restore(gan.degrade(high)) - high).abs().mean() + (
            gan.degrade(gan.restore(low)) - low
        ).abs().mean()
    assert value["cycle"] == pytest.approx(float(expected_cycle), rel=1e-5)
    loss = gan.discriminator_loss(high, low, fake_low, fake_high)
    loss.backward()
    assert all(p.grad is None for p in gan.degrade.parameters()), (
        "the discriminators' loss must not train the generators"
    )


def test_the_image_pool_keeps_a_history():
    pool = ImagePool(2, seed=0)
    first = pool.query(torch.zeros(2, 1, 2, 2))
    assert torch.equal(first, torch.zeros(2, 1, 2, 2)) and len(pool.images) == 2
    mixed = torch.cat([pool.query(torch.ones(1, 1, 2, 2)) for _ in range(40)])
    assert (mixed.flatten(1).amax(1) == 0).any() and (mixed.flatten(1).amax(1) == 1).any()
    assert torch.equal(ImagePool(0).query(torch.ones(1, 1, 2, 2)), torch.ones(1, 1, 2, 2))


def test_the_diffusion_training_target_is_the_added_noise():
    """A network that knows x_0 and returns the true noise has zero loss; one that returns zeros has the noise's
    mean square: the target is eps of x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (MONAI's add_noise)."""
    from monai.networks.schedulers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=1000)
    generator = torch.Generator().manual_seed(0)
    clean, condition = torch.rand(3, 1, 8, 8, generator=generator), torch.rand(3, 1, 8, 8, generator=generator)
    noise, timesteps = torch.randn(3, 1, 8, 8, generator=generator), torch.tensor([0, 500, 999])
    abar = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)

    def oracle(inputs, t):
        assert inputs.shape[1] == 2 and torch.allclose(inputs[:, 1:], condition * 2 - 1) and torch.equal(t, timesteps)
        return (inputs[:, :1] - abar.sqrt() * (clean * 2 - 1)) / (1 - abar).sqrt()

    assert float(noise_prediction_loss(oracle, scheduler, clean, condition, timesteps=timesteps, noise=noise)) < 1e-8
    zero = lambda inputs, t: torch.zeros_like(inputs[:, :1])  # noqa: E731
    assert float(
        noise_prediction_loss(zero, scheduler, clean, condition, timesteps=timesteps, noise=noise)
    ) == pytest.approx(float((noise**2).mean()))


def test_the_sampler_is_deterministic_for_a_seed():
    torch.manual_seed(0)
    network = diffusion_unet(channels=(8, 8), attention=(False, False), norm_groups=4).eval()
    condition = torch.rand(1, 1, 16, 16)
    a = sample(network, condition, steps=5, start_fraction=1.0, seed=3)
    b = sample(network, condition, steps=5, start_fraction=1.0, seed=3)
    c = sample(network, condition, steps=5, start_fraction=1.0, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == condition.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    # the network is asked at the start and then at strides of T // steps, the stride MONAI's DDIM step assumes
    from xvertnet.methods.led.conditional_diffusion import sampling_timesteps

    asked = []

    def recording(inputs, t):
        asked.append(int(t[0]))
        return torch.zeros_like(inputs[:, :1])

    sample(recording, condition, steps=20, start_fraction=0.5, seed=0)
    assert asked[0] == round(0.5 * 999) == 500 and asked == sampling_timesteps(500, 1000, 20) and asked[-1] < 50
    assert all(a - b == 50 for a, b in zip(asked, asked[1:]))


def test_quality_sets_never_put_one_view_in_both():
    records = [
        {
            "image_id": f"drr_{p}_{v}_{c}",
            "patient": p,
            "view": v,
            "condition": c,
            "source": "ct-drr",
            "crop": np.zeros((4, 4)),
        }
        for p in ("a", "b")
        for v in ("ap", "rotl4")
        for c in ("standard", "low_dose", "blur", "low_contrast", "8bit")
    ]
    records.append(
        {
            "image_id": "rg1",
            "patient": "rg1",
            "view": "pa",
            "condition": "real",
            "source": "pydicom (real CR)",
            "crop": np.zeros((4, 4)),
        }
    )
    high, low, rule = quality_sets(records)
    views = lambda rs: {(r["patient"], r["view"]) for r in rs}  # noqa: E731
    assert high and low and not views(high) & views(low) and "condition labels" in rule
    assert {r["condition"] for r in high} == {"standard", "real"} and {r["condition"] for r in low} == {
        "low_dose",
        "blur",
        "low_contrast",
    }
    assert "rg1" in {r["image_id"] for r in high}

    rng = np.random.default_rng(0)
    unlabelled = [
        {"image_id": f"n{i}", "crop": ndimage.gaussian_filter(rng.random((64, 64)), 4) + rng.normal(0, s, (64, 64))}
        for i, s in enumerate([0.001, 0.002, 0.05, 0.08])
    ]
    high, low, rule = quality_sets(unlabelled)
    assert (
        [r["image_id"] for r in high] == ["n0", "n1"]
        and [r["image_id"] for r in low] == ["n2", "n3"]
        and "noise proxy" in rule
    )
    high, low, _ = quality_sets(unlabelled, noise_threshold=0.06)
    assert len(high) == 3 and len(low) == 1


def test_led_trains_and_enhances_on_the_cpu_when_cuda_is_asked_for(tmp_path, caplog):
    rng = np.random.default_rng(1)
    clean = [ndimage.gaussian_filter(rng.random((48, 48)), 3).astype(np.float32) for _ in range(3)]
    data = {
        "high": [{"image_id": "h", "crop": c} for c in clean],
        "low": [
            {"image_id": "l", "crop": np.clip(c + rng.normal(0, 0.1, c.shape), 0, 1).astype(np.float32)} for c in clean
        ],
        "val_high": [],
        "rule": "test",
    }
    method = get_method("led", {**TINY_LED, "device": "cuda", "precision": "fp16"})
    with caplog.at_level(logging.WARNING):
        metadata = method.fit(data, tmp_path / "led")
    if not torch.cuda.is_available():
        assert metadata["device"] == "cpu" and "CUDA is not available" in caplog.text
    assert metadata["diffusion"]["validation_source"].startswith("training pairs")
    loaded = get_method("led", {**TINY_LED, "device": "cuda"})
    loaded.load(tmp_path / "led")
    image = clean[0][:45, :37]
    out = loaded.enhance(image)
    assert out.shape == image.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.array_equal(out, loaded.enhance(image)), "enhancement is deterministic"
    assert loaded.degrade(image).shape == image.shape


def test_led_needs_both_quality_sets(tmp_path):
    from xvertnet.errors import XvertnetError

    crop = np.zeros((48, 48), np.float32)
    with pytest.raises(XvertnetError, match="needs high- and low-quality training crops, got 1 high and 0 low"):
        get_method("led", TINY_LED).fit({"high": [{"crop": crop}], "low": [], "val_high": [], "rule": "test"}, tmp_path)


def test_a_clean_condition_comes_back_nearly_unchanged_measured():
    """Trained on (noisy, clean) pairs, the conditional model denoises a noisy condition and, given an already
    clean one, returns it nearly unchanged: measured on new images, not assumed."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def clean_images(n):
        return np.stack([ndimage.gaussian_filter(rng.random((32, 32)), 2.5) for _ in range(n)]).astype(np.float32)

    def normalise(x):
        lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
        return 0.2 + 0.6 * (x - lo) / (hi - lo)

    from monai.networks.schedulers import DDPMScheduler

    network = diffusion_unet(channels=(16, 32), attention=(False, False), norm_groups=8)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    optimiser = torch.optim.Adam(network.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        clean = normalise(clean_images(16))
        noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1).astype(np.float32)
        loss = noise_prediction_loss(
            network, scheduler, torch.from_numpy(clean)[:, None], torch.from_numpy(noisy)[:, None], generator=generator
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    network.eval()
    clean = normalise(clean_images(8))
    noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1).astype(np.float32)
    psnr = lambda a, b: float(10 * np.log10(1 / np.mean((a - b) ** 2)))  # noqa: E731
    from_clean = sample(network, torch.from_numpy(clean)[:, None], steps=20, start_fraction=0.3, seed=0)[:, 0].numpy()
    from_noisy = sample(network, torch.from_numpy(noisy)[:, None], steps=20, start_fraction=0.3, seed=0)[:, 0].numpy()
    unchanged, denoised, before = psnr(from_clean, clean), psnr(from_noisy, clean), psnr(noisy, clean)
    assert denoised > before + 2, (denoised, before)
    assert unchanged > before + 4, (unchanged, before)


def _phantom(rng, shift=0):
    """A whole 'radiograph': dark air around a body, brighter mediastinum, a bright spine column."""
    image = np.full((96, 80), 0.05)
    yy, xx = np.mgrid[:96, :80]
    image[((yy - 48) / 44) ** 2 + ((xx - 40) / 34) ** 2 < 1] = 0.4
    image[:, 34 + shift : 46 + shift] = np.where(image[:, 34 + shift : 46 + shift] > 0.1, 0.8, 0.05)
    return np.clip(image + rng.normal(0, 0.01, image.shape), 0, 1).astype(np.float32)


def test_the_led_report_scores_restoration_and_moved_structures(tmp_path):
    """Against the clean DRR: the identity scores the degraded input itself, a method that returns the clean image
    scores perfectly; a method that moves the spine loses bone-mask Dice, one that only changes grey levels keeps it."""
    import pandas as pd

    from xvertnet.io.shard_store import open_shard_for_writing
    from xvertnet.stages import led_report

    rng = np.random.default_rng(0)
    clean = _phantom(rng)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    images = {"drr_p_ap_standard": clean, "drr_p_ap_low_dose": noisy}
    outputs = {
        "original": dict(images),
        "perfect": {k: clean for k in images},
        "moved": {k: _phantom(rng, shift=20) for k in images},
        "brighter": {k: np.clip(v * 0.6 + 0.3, 0, 1).astype(np.float32) for k, v in images.items()},
    }
    specs = []
    for method, arrays in outputs.items():
        path = tmp_path / method / "shard-00000.h5"
        path.parent.mkdir()
        with open_shard_for_writing(path, stage="enhance_shard", params={}) as shard:
            for image_id, image in arrays.items():
                shard.add(
                    image_id, {"eval_upper": image[:48], "eval_lower": image[48:], "whole": image}, {"split": "test"}
                )
        specs.append(f"demo:{method}:{path}")
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(
        [
            {
                "image_id": k,
                "path": f"{k}.png",
                "source": "ct-drr",
                "bit_depth": 12,
                "split": "test",
                "patient": "p",
                "view": "ap",
                "condition": k.rsplit("_", 1)[-1] if "standard" in k else "low_dose",
            }
            for k in images
        ]
    ).to_csv(manifest, index=False)
    get_method("led", TINY_LED).fit(
        {"high": [{"crop": clean}], "low": [{"crop": noisy}], "val_high": [], "rule": "test"}, tmp_path / "model"
    )
    out = tmp_path / "report"
    args = type(
        "Args",
        (),
        {
            "enhanced": specs,
            "manifests": f'{{"demo": "{manifest}"}}',
            "model_dir": tmp_path / "model",
            "settings": __import__("json").dumps(TINY_LED),
            "splits": ["test"],
            "out_dir": out,
        },
    )
    assert led_report.run(args) == 0
    restoration = pd.read_csv(out / "restoration.csv")
    degraded = restoration[restoration["condition"] == "low_dose"].groupby("method")[["psnr", "ssim"]].mean()
    assert degraded.loc["perfect", "ssim"] == pytest.approx(1.0) and degraded.loc["perfect", "psnr"] > 90
    assert degraded.loc["original", "psnr"] < 25
    clean_in = restoration[restoration["condition"] == "standard in"].set_index(["method", "roi"])
    assert clean_in.loc[("original", "upper"), "ssim"] == pytest.approx(1.0)
    hallucination = pd.read_csv(out / "hallucination.csv").groupby("method")[["bone_dice", "body_dice"]].mean()
    assert hallucination.loc["original", "bone_dice"] == 1.0 and hallucination.loc["brighter", "bone_dice"] > 0.95
    assert hallucination.loc["moved", "bone_dice"] < 0.5 and hallucination.loc["moved", "body_dice"] > 0.9
    assert "led (G)" in hallucination.index and (out / "worst_cases.png").stat().st_size > 1000
    assert "| perfect |" in (out / "led.md").read_text()


def test_the_restoration_mean_covers_the_degradations_led_restores_only():
    import pandas as pd

    from xvertnet.reporting.led_report import summary_markdown

    # hand values: 8-bit quantisation (neither quality set) would lift the mean from 20 to 30 dB
    restoration = pd.DataFrame(
        {
            "method": ["led"] * 4,
            "condition": ["8bit", "low_dose", "blur", "standard in"],
            "psnr": [60.0, 10.0, 30.0, 50.0],
            "ssim": [1.0, 0.2, 0.6, 0.9],
        }
    )
    hallucination = pd.DataFrame(
        {"method": ["led"], "image_id": ["a"], "condition": ["standard"], "bone_dice": [1.0], "body_dice": [1.0]}
    )
    text = summary_markdown(restoration, hallucination, ["led"])
    assert "mean of low_dose, blur, low_contrast PSNR / SSIM" in text
    assert "| 20.00 / 0.4000 |" in text


def test_led_training_data_reads_each_shards_own_manifest(tmp_path):
    import pandas as pd
    from synthetic_data import synthetic_shards

    shards, manifests = [], {}
    for dataset, condition in (("a", "standard"), ("b", "low_dose")):
        (tmp_path / dataset / "prep").mkdir(parents=True)
        shards += synthetic_shards(tmp_path / dataset / "prep", images=4)  # both: img00, img01, img10, img11
        path = tmp_path / f"{dataset}.csv"
        ids = ["img00", "img01", "img10", "img11"]
        pd.DataFrame(
            {
                "image_id": ids,
                "path": [f"{i}.png" for i in ids],
                "split": ["val", "train", "val", "train"],
                "patient": [dataset] * 4,
                "view": ["ap", "ap", "lat", "lat"],
                "condition": [condition] * 4,
                "source": ["ct-drr"] * 4,
                "bit_depth": [12] * 4,
            }
        ).to_csv(path, index=False)
        manifests[dataset] = str(path)
    data = get_method("led", TINY_LED).training_data(shards, manifests)
    # a's crops are clean (high quality), b's low dose (low quality): each image kept its own data set's row
    assert data["high"] and data["low"]
    assert {item["patient"] for item in data["high"]} == {"a"} and {item["patient"] for item in data["low"]} == {"b"}
