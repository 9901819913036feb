"""The model observers are validated before they are used: known answers on white noise, invariance of the ideal
observer, the human-like observer's dependence on the display, and the command on folders of images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from command_line import run_cli
from PIL import Image

from xvertnet.cli import main
from xvertnet.evaluation import observer as obs


def gaussian_signal(size: int, amplitude: float, width: float) -> np.ndarray:
    x, y = obs._grid(size)
    return amplitude * np.exp(-(x**2 + y**2) / (2.0 * width**2))


def white_noise_study(size=24, count=4000, amplitude=0.5, width=2.5, seed=1):
    rng = np.random.default_rng(seed)
    signal = gaussian_signal(size, amplitude, width)
    present = rng.standard_normal((count, size, size)) + signal
    absent = rng.standard_normal((count, size, size))
    fold = np.arange(count) % 2
    return signal, present, absent, fold


def test_channelized_hotelling_reaches_the_matched_filter_on_white_noise():
    signal, present, absent, fold = white_noise_study()
    analytic = np.linalg.norm(signal)  # ||s|| / sigma, sigma = 1
    channels = obs.laguerre_gauss_channels(
        signal.shape[0], 2.5 * np.sqrt(2.0 * np.pi), 6
    )  # a^2 = 2 pi w^2: the signal's width
    flat_p, flat_a = present.reshape(len(present), -1), absent.reshape(len(absent), -1)
    p, a = obs.two_fold_scores(flat_p @ channels.T, flat_a @ channels.T, fold, fold, obs.hotelling_scores)
    assert obs.dprime(p, a) == pytest.approx(analytic, rel=0.05)
    assert obs.auc(p, a) == pytest.approx(obs.auc_from_dprime(obs.dprime(p, a)), abs=0.01)


def test_non_prewhitening_observer_reaches_the_matched_filter_on_white_noise():
    signal, present, absent, fold = white_noise_study(size=16, count=8000)
    p, a = obs.two_fold_scores(present, absent, fold, fold, lambda tp, ta, test: obs.npwe_scores(tp, ta, test, None))
    assert obs.dprime(p, a) == pytest.approx(np.linalg.norm(signal), rel=0.05)
    assert obs.auc(p, a) == pytest.approx(obs.auc_from_dprime(obs.dprime(p, a)), abs=0.01)


def test_no_invertible_linear_filter_changes_the_ideal_linear_observer():
    """Processing cannot create information: the Hotelling observer's d' on a sharpened image equals its d' on the
    original (well inside the bootstrap interval)."""
    _, present, absent, fold = white_noise_study(size=10, count=3000, amplitude=0.6, width=1.5)
    # correlated noise first, so a filter could matter to an observer that ignores the noise's correlations
    kernel = np.fft.fft2(np.pad(np.ones((3, 3)) / 9.0, ((0, 7), (0, 7))))
    blur = lambda images: np.real(np.fft.ifft2(np.fft.fft2(images) * (0.3 + kernel)))  # noqa: E731
    present, absent = blur(present), blur(absent)
    sharpen = lambda images: np.real(np.fft.ifft2(np.fft.fft2(images) / (0.3 + kernel)))  # noqa: E731  invertible
    groups = np.zeros(len(present))
    resamples = obs.bootstrap_indices(groups, groups, 200, 0)

    def ideal(p_images, a_images):
        flat = lambda images: images.reshape(len(images), -1)  # noqa: E731
        return obs.two_fold_scores(flat(p_images), flat(a_images), fold, fold, obs.hotelling_scores)

    before = obs.summarise(*ideal(present, absent), resamples)
    after = obs.summarise(*ideal(sharpen(present), sharpen(absent)), resamples)
    assert abs(after["dprime"] - before["dprime"]) < 0.1 * (before["dprime_high"] - before["dprime_low"])
    npw = obs.dprime(
        *obs.two_fold_scores(present, absent, fold, fold, lambda tp, ta, test: obs.npwe_scores(tp, ta, test, None))
    )
    assert before["dprime"] >= npw - 0.05  # the ideal linear observer is the best linear observer


def test_the_human_like_observer_reads_the_display_the_ideal_one_the_image():
    """A signal in the brightest percent of the image is clipped by the reader's window: invisible to the observer of
    the displayed image, plain to the one of the image itself (so a method that keeps such a region inside the
    window, and the display step itself, decide what a reader can gain)."""
    rng = np.random.default_rng(3)
    size, count = 32, 400
    base = np.full((count, 96, 96), 0.3)
    base[:, 32:64, 32:64] = 3.0  # a dense region ...
    base[:, 44:52, 44:52] = 6.0  # ... with a denser core above the 99th percentile: clipped by the window
    signal = np.zeros((96, 96))
    signal[46:50, 46:50] = 0.6
    present = base + signal + 0.1 * rng.standard_normal(base.shape)
    absent = base + 0.1 * rng.standard_normal(base.shape)
    settings = obs.ObserverSettings(patch_px=size, internal_noise=0.0, channels="laguerre-gauss", laguerre_width_px=6.0)
    fold = np.arange(count) % 2

    def human(images):
        return np.stack([obs.patch(obs.displayed(image), (48, 48), size) for image in images])

    shown = obs.observer_scores(human(present), human(absent), fold, fold, settings)
    raw = obs.observer_scores(
        np.stack([obs.patch(i, (48, 48), size) for i in present]),
        np.stack([obs.patch(i, (48, 48), size) for i in absent]),
        fold,
        fold,
        settings,
    )
    assert abs(obs.dprime(*shown["cho"])) < 0.5 and abs(obs.dprime(*shown["npwe"])) < 0.5
    assert obs.dprime(*raw["cho"]) > 5.0


def test_observer_settings_refuse_bad_values():
    from xvertnet.errors import InvalidValueError

    with pytest.raises(InvalidValueError, match="channels"):
        obs.ObserverSettings(channels="dog")
    with pytest.raises(InvalidValueError, match="internal_noise"):
        obs.ObserverSettings(internal_noise=-1.0)


def test_paired_difference_of_a_method_with_itself_is_zero():
    _, present, absent, fold = white_noise_study(size=8, count=400)
    scores = (present.sum(axis=(1, 2)), absent.sum(axis=(1, 2)))
    resamples = obs.bootstrap_indices(np.arange(400) % 3, np.arange(400) % 3, 100, 0)
    paired = obs.paired_difference(scores, scores, resamples)
    assert paired["difference"] == 0 and paired["low"] == 0 and paired["high"] == 0 and paired["p"] == 1.0


def _folder(path, images):
    path.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(np.clip(image * 255, 0, 255).astype(np.uint8)).save(path / f"{index:03d}.png")
    return path


def test_observer_command_on_folders(tmp_path, capsys):
    rng = np.random.default_rng(0)
    disk = gaussian_signal(48, 0.15, 4.0)
    noise = lambda: 0.5 + 0.08 * rng.standard_normal((48, 48))  # noqa: E731
    present = _folder(tmp_path / "present", [noise() + disk for _ in range(40)])
    absent = _folder(tmp_path / "absent", [noise() for _ in range(40)])
    other = _folder(tmp_path / "other", [noise() for _ in range(40)])

    def observe(*folders):
        capsys.readouterr()
        assert (
            main(
                [
                    "observer",
                    "--present",
                    str(folders[0]),
                    "--absent",
                    str(folders[1]),
                    "--size",
                    "32",
                    "--bootstrap",
                    "200",
                    "--json",
                ]
            )
            == 0
        )
        return json.loads(capsys.readouterr().out)["observers"]

    found = observe(present, absent)
    assert found["cho"]["auc"] > 0.9 and found["npwe"]["auc_low"] > 0.5  # the eye filter passes little of a broad blob
    null = observe(other, absent)
    assert null["cho"]["auc_low"] < 0.5 < null["cho"]["auc_high"] or abs(null["cho"]["auc"] - 0.5) < 0.15


def test_observer_command_errors_are_one_line(tmp_path, capsys):
    small = _folder(tmp_path / "small", [np.zeros((40, 40))] * 2)
    code, message = run_cli(capsys, "observer", "--present", small, "--absent", small)
    assert code == 2 and "at least 4" in message and str(small) in message
    mixed = _folder(tmp_path / "mixed", [np.zeros((40, 40))] * 3 + [np.zeros((48, 40))])
    code, message = run_cli(capsys, "observer", "--present", mixed, "--absent", mixed)
    assert code == 2 and "differs" in message
    same = _folder(tmp_path / "same", [np.zeros((40, 40))] * 4)
    code, message = run_cli(capsys, "observer", "--present", same, "--absent", same, "--location", "3")
    assert code == 2 and "ROW,COLUMN" in message
