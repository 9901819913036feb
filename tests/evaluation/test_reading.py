"""The 2AFC reading page works in a browser, and its answers are scored as the statistics say."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from browser_pages import console_errors, wait_for_images
from command_line import run_cli
from PIL import Image

from xvertnet.cli import main
from xvertnet.evaluation.reading import score_answers, write_reading_page


def study_patches(count=10, seed=0):
    """Two methods' patches of ``count`` levels x 2 realisations: a bright disc where the lesion is, faint under 'flat'."""
    rng = np.random.default_rng(seed)
    rows, plain, faint = [], [], []
    y, x = np.mgrid[:24, :24]
    disc = ((y - 12) ** 2 + (x - 12) ** 2 < 16).astype(float)
    for level in range(count):
        for realisation in range(2):
            for present in (False, True):
                noise = 0.5 + 0.1 * rng.standard_normal((24, 24))
                plain.append(np.clip(noise + 0.3 * disc * present, 0, 1))
                faint.append(np.clip(noise + 0.002 * disc * present, 0, 1))
                rows.append(
                    {
                        "patient": "p",
                        "level": level,
                        "region": "behind_heart",
                        "realisation": realisation,
                        "present": present,
                        "kind": "wedge",
                        "grade": 2 if present else 0,
                    }
                )
    return {"original": np.stack(plain), "flat": np.stack(faint)}, pd.DataFrame(rows)


def test_a_scripted_reader_who_picks_the_brighter_side_gets_the_expected_score(tmp_path, browser, capsys):
    patches, cases = study_patches()
    page = write_reading_page(patches, cases, tmp_path / "reading", trials_per_method=12)
    trials = pd.read_csv(tmp_path / "reading" / "trials.csv", dtype={"trial": str})
    assert "present_side" not in page.read_text() and "original" not in page.read_text().split("<script>")[1]
    browser.get(page.as_uri())
    expected = {}
    for _ in range(len(trials)):
        assert not wait_for_images(browser)
        current = browser.execute_script("return window.readingCurrent()")
        brightness = {
            side: np.asarray(Image.open(page.parent / current[side]), dtype=float)[8:16, 8:16].mean()
            for side in ("left", "right")
        }
        side = max(brightness, key=brightness.get)
        truth = trials.set_index("trial").loc[current["trial"]]
        expected.setdefault(truth["method"], []).append(side == truth["present_side"])
        browser.find_element("id", side).click()
    assert browser.execute_script("return window.readingCurrent()") is None
    assert browser.find_element("id", "download").is_displayed()
    assert not console_errors(browser)
    answers = tmp_path / "reader1.csv"
    answers.write_text(browser.execute_script("return window.readingAnswersCsv()"))
    blocks = pd.read_csv(answers)["block"].tolist()
    assert len(set(blocks)) == 2 and blocks == sorted(blocks, key=blocks.index)  # one method at a time
    capsys.readouterr()
    assert (
        main(
            [
                "score-reading",
                str(answers),
                "--trials",
                str(tmp_path / "reading" / "trials.csv"),
                "--json",
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    scores = {row["method"]: row for row in json.loads(capsys.readouterr().out)}
    for method, correct in expected.items():
        assert scores[method]["pc"] == pytest.approx(np.mean(correct))
        assert scores[method]["trials"] == 12
    assert scores["original"]["pc"] == 1.0 and scores["flat"]["pc"] < 0.9
    assert scores["flat"]["vs_original"] == pytest.approx(scores["flat"]["pc"] - 1.0)


def test_scores_pool_readers_and_refuse_answers_of_another_page(tmp_path, capsys):
    patches, cases = study_patches()
    write_reading_page(patches, cases, tmp_path / "reading", trials_per_method=8)
    trials = pd.read_csv(tmp_path / "reading" / "trials.csv", dtype={"trial": str})
    right = pd.DataFrame(
        {"trial": trials["trial"], "block": trials["block"], "chosen": trials["present_side"], "milliseconds": 900}
    )
    wrong = right.assign(chosen=np.where(right["chosen"] == "left", "right", "left"))
    scores = score_answers(pd.concat([right.assign(reader="a"), wrong.assign(reader="b")]), trials, bootstrap=100)
    assert (scores["pc"] == 0.5).all() and (scores["pc_low"] <= 0.5).all()
    bad = tmp_path / "bad.csv"
    right.assign(trial="ffffffffff").to_csv(bad, index=False)
    code, message = run_cli(capsys, "score-reading", bad, "--trials", tmp_path / "reading" / "trials.csv")
    assert code == 2 and "another page" in message
    odd = tmp_path / "odd.csv"
    right.assign(chosen="up").to_csv(odd, index=False)
    code, message = run_cli(capsys, "score-reading", odd, "--trials", tmp_path / "reading" / "trials.csv")
    assert code == 2 and str(odd) in message and "left or right" in message


def test_pairs_are_of_one_view_when_a_patient_is_seen_in_several():
    """With views, a level and realisation recur in each view: a present patch is paired with the absent patch of its
    own view, never another view's."""
    from xvertnet.evaluation.reading import choose_pairs

    _, cases = study_patches(count=3)
    cases = pd.concat([cases.assign(view="ap"), cases.assign(view="rotl4")], ignore_index=True)
    pairs = choose_pairs(cases, count=len(cases), seed=0)
    assert len(pairs) == int(cases["present"].sum())
    for present, absent in pairs:
        same = ["patient", "view", "level", "realisation", "kind"]
        assert cases.loc[present, same].tolist() == cases.loc[absent, same].tolist()
        assert cases.loc[present, "present"] and not cases.loc[absent, "present"]
