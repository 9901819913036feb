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
from xvertnet.evaluation import observer_validation as validation


def test_channelized_hotelling_reaches_the_matched_filter_on_white_noise():
    check = validation.cho_on_white_noise()
    assert check.values["dprime"] == pytest.approx(check.values["analytic"], rel=0.05)
    assert check.values["auc"] == pytest.approx(check.values["auc_from_dprime"], abs=0.01)


def test_non_prewhitening_observer_reaches_the_matched_filter_on_white_noise():
    check = validation.npw_on_white_noise()
    assert check.values["dprime"] == pytest.approx(check.values["analytic"], rel=0.05)
    assert check.values["auc"] == pytest.approx(check.values["auc_from_dprime"], abs=0.01)


def test_no_invertible_linear_filter_changes_the_ideal_linear_observer():
    """Processing cannot create information: the Hotelling observer's d' on a sharpened image equals its d' on the
    original (well inside the bootstrap interval), and no other linear observer does better."""
    check = validation.hotelling_under_an_invertible_filter()
    assert abs(check.values["after"] - check.values["before"]) < 0.1 * check.values["interval_width"]
    assert check.values["before"] >= check.values["npw"] - 0.05  # the ideal linear observer is the best linear one


def test_the_human_like_observer_reads_the_display_the_ideal_one_the_image():
    """A signal in the brightest percent of the image is clipped by the reader's window: invisible to the observer of
    the displayed image, plain to the one of the image itself (so a method that keeps such a region inside the
    window, and the display step itself, decide what a reader can gain)."""
    check = validation.display_clipping()
    assert abs(check.values["displayed_cho"]) < 0.5 and abs(check.values["displayed_npwe"]) < 0.5
    assert check.values["image_cho"] > 5.0


def test_the_validation_table_escapes_the_norm_bars():
    check = validation.Check("a | b", "||s||", "1", {})
    row = validation.checks_markdown([check]).splitlines()[2]
    assert row == "| a \\| b | \\|\\|s\\|\\| | 1 |" and row.count(" | ") == 2


def test_observer_settings_refuse_bad_values():
    from xvertnet.errors import InvalidValueError

    with pytest.raises(InvalidValueError, match="channels"):
        obs.ObserverSettings(channels="dog")
    with pytest.raises(InvalidValueError, match="internal_noise"):
        obs.ObserverSettings(internal_noise=-1.0)


def test_paired_difference_of_a_method_with_itself_is_zero():
    _, present, absent, fold = validation.white_noise_study(size=8, count=400)
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
    disk = validation.gaussian_signal(48, 0.15, 4.0)
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
