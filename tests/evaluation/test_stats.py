"""Outlier removal, the Wilcoxon comparisons and the table, recomputed by hand from a per-ROI table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xvertnet.evaluation.stats import compare, inliers, recorded_param, sigma_onf_note, write_comparison_tables


def _per_roi(seed=0, sigma_onf=0.75):
    rng = np.random.default_rng(seed)
    params = json.dumps({"cnr_band": 12, "lpc_sigma_onf": sigma_onf, "tc_intensity_scale": 1 / 255}, sort_keys=True)
    rows = []
    for index in range(20):
        for roi in ("upper", "lower"):
            base = rng.normal(5, 1)
            for method, shift in (("original", 0.0), ("xvertnet", 1.0), ("clahe", 0.05)):
                value = base + shift + rng.normal(0, 0.3)
                if method == "clahe" and index == 3 and roi == "upper":
                    value = 50.0  # an outlier
                rows.append(
                    {
                        "dataset": "d",
                        "image_id": f"i{index}",
                        "roi": roi,
                        "split": "test",
                        "method": method,
                        "entropy": value,
                        "piqe": 100 - value,
                        "lpc_si": value / 10,
                        "params": params,
                    }
                )
    return pd.DataFrame(rows)


def test_inliers_drop_values_beyond_1_96_std():
    values = pd.Series([1.0, 1.1, 0.9, 1.0, 1.05, 10.0])
    assert list(inliers(values)) == [True, True, True, True, True, False]


def test_table_statistics_match_a_recomputation(tmp_path):
    per_roi = _per_roi()
    statistics = compare(per_roi)
    row = statistics.set_index(["measure", "method"]).loc[("entropy", "clahe")]
    clahe = per_roi[per_roi["method"] == "clahe"]["entropy"]
    kept = clahe[(clahe - clahe.mean()).abs() <= 1.96 * clahe.std(ddof=1)]
    assert (
        row["n"] == 39 and row["mean"] == pytest.approx(kept.mean()) and row["std"] == pytest.approx(kept.std(ddof=1))
    )
    wide = per_roi.pivot_table(index=["image_id", "roi"], columns="method", values="entropy")
    keep = pd.Series(True, index=wide.index)
    for method in ("xvertnet", "clahe"):
        column = wide[method]
        keep &= (column - column.mean()).abs() <= 1.96 * column.std(ddof=1)
    expected = stats.wilcoxon(wide.loc[keep, "xvertnet"], wide.loc[keep, "clahe"]).pvalue
    assert row["p_value"] == pytest.approx(expected) and row["significant"]
    write_comparison_tables(statistics, tmp_path / "comparison")
    markdown = (tmp_path / "comparison.md").read_text()
    assert "| d | Entropy ↑ |" in markdown and "| d | PIQE ↓ |" in markdown
    entropy_line = next(line for line in markdown.splitlines() if "Entropy" in line)
    assert "**" in entropy_line.split("|")[4]  # xvertnet has the best entropy (column 4: original, xvertnet, ...)
    assert r"\textbf" in (tmp_path / "comparison.tex").read_text()
    assert len(pd.read_csv(tmp_path / "comparison.csv")) == len(statistics)


@pytest.mark.parametrize("sigma_onf", [0.75, 0.33])
def test_every_table_names_the_lpc_si_sigma_onf_of_its_rows(tmp_path, sigma_onf):
    statistics = compare(_per_roi(sigma_onf=sigma_onf))
    lpc_rows = statistics[statistics["measure"] == "lpc_si"]
    assert set(lpc_rows["lpc_sigma_onf"]) == {f"{sigma_onf:g}"}
    assert set(statistics.loc[statistics["measure"] != "lpc_si", "lpc_sigma_onf"]) == {""}
    write_comparison_tables(statistics, tmp_path / "comparison")
    assert f"LPC-SI computed with log-Gabor σ_onf = {sigma_onf:g} " in (tmp_path / "comparison.md").read_text()
    assert rf"$\sigma_\mathrm{{onf}}$ = {sigma_onf:g} " in (tmp_path / "comparison.tex").read_text()
    assert set(pd.read_csv(tmp_path / "comparison.csv").dropna(subset=["lpc_sigma_onf"])["lpc_sigma_onf"]) == {
        sigma_onf
    }


def test_mixed_or_missing_sigma_onf_is_said_plainly():
    mixed = pd.concat([_per_roi(sigma_onf=0.75).assign(dataset="a"), _per_roi(sigma_onf=0.33).assign(dataset="b")])
    assert recorded_param(mixed, "lpc_sigma_onf") == "0.33;0.75"
    assert "different σ_onf (0.33, 0.75)" in sigma_onf_note(compare(mixed)["lpc_sigma_onf"])
    assert recorded_param(mixed.drop(columns="params"), "lpc_sigma_onf") == ""
    assert sigma_onf_note([]) == "LPC-SI: σ_onf not recorded."


def test_the_panel_shows_the_real_radiographs_and_a_clean_and_low_dose_pair_and_names_fit():
    from xvertnet.reporting.report_figures import _wrapped, panel_image_ids

    ids = [
        "drr_a_ap_8bit",
        "drr_a_ap_standard",
        "drr_b_ap_standard",
        "drr_b_ap_low_dose",
        "drr_a_ap_low_dose",
        "rg1",
        "val_x",
    ]
    per_roi = pd.DataFrame({"image_id": ids, "split": ["test"] * 6 + ["val"]})
    manifest = pd.DataFrame(
        {
            "image_id": ids,
            "patient": ["a", "a", "b", "b", "a", "rg1", "a"],
            "condition": ["8bit", "standard", "standard", "low_dose", "low_dose", "real", "standard"],
            "source": ["ct-drr"] * 5 + ["real CR", "ct-drr"],
        }
    )
    assert panel_image_ids(per_roi, {"demo": manifest}, count=4) == [
        "rg1",
        "drr_a_ap_standard",
        "drr_a_ap_low_dose",
        "drr_a_ap_8bit",
    ]
    assert panel_image_ids(per_roi, None, count=2) == [
        "drr_a_ap_8bit",
        "drr_a_ap_standard",
    ]  # no manifest: the first ones
    assert _wrapped("study-anchored-then-clahe-T2") == "study-anchored-\nthen-clahe-T2"
    assert all(len(line) <= 15 for line in _wrapped("clahe-then-xvertnet-paper-long").splitlines())
