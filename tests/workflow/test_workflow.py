"""The workflow end to end through Snakemake on a tiny config: outputs, no-op rerun, bad config, bad images."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from browser_pages import check_gallery, check_report, chromium_driver, chromium_paths
from repo_paths import REPO
from workflow_runs import (
    dry_run_with_change,
    load_test_config,
    make_workdir,
    planned_jobs,
    snakemake,
    snakemake_command,
)

pytestmark = pytest.mark.workflow

TINY = load_test_config("config")  # configs/test/config.yaml
# The schema's default XVertNet rows: the paper's recipe (T = 2 here) and the recommended one (T = 1).
XVERTNET = {"xvertnet-paper": 2, "xvertnet": 1}
METHODS = ["original", *XVERTNET, "clahe", "farbman", "zerodce", "zssr", "madmad", "lut-mapping"]
# Zero-DCE and the LUT mapping train on the prep crops, so they follow prep; the other baselines start from the ROIs.
# xvertnet-paper: 2 iterations trained, 3 shards refined once; xvertnet: 1 iteration; both enhance 3 shards.
# enhance_shard: the two XVertNet rows, Zero-DCE and the LUT mapping (3 shards each). Every trained model is published;
# the LUT mapping's maps are drawn again from its new model.
DOWNSTREAM_OF_PREP = {
    "prep": 3,
    "prep_summary": 1,
    "train": 2 + 1,
    "refine": 3,
    "enhance_shard": 3 * 4,
    "train_baseline": 2,
    "publish_model": 2 + 1 + 2,
    "lut_maps": 1,
    "enhanced_index": 4,
    "metrics_shard": 3 * 4,
    "segmentation_task": 4,
    "aggregate_metrics": 1,
    "tables": 1,
    "gallery": 1,
    "all": 1,
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = make_workdir(tmp_path_factory.mktemp("wf"), TINY)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_workflow_builds_demo_ingest_and_rois(tiny_run):
    manifest = pd.read_csv(tiny_run / "results/demo/raw/manifest.csv")
    assert sorted(manifest["image_id"]) == sorted(
        [
            "drr_lidc0001_ap_standard",
            "drr_lidc0001_ap_8bit",
            "drr_lidc0001_rotl4_standard",
            "drr_lidc0001_rotl4_8bit",
            "rg1_uncr",
        ]
    )
    assert list(manifest.columns[:5]) == ["image_id", "path", "source", "bit_depth", "split"]
    shards = sorted(p.name for p in (tiny_run / "results/demo/ingest").glob("*.h5"))
    assert shards == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    index = pd.read_csv(tiny_run / "results/demo/roi/index.csv")
    assert sorted(index["image_id"]) == sorted(manifest["image_id"])
    assert set(index["train_upper_height"]) == {256} and set(index["eval_upper_width"]) == {73}
    assert len(pd.read_csv(tiny_run / "results/demo/rejects.csv")) == 0
    assert len(list((tiny_run / "results/demo/qc/roi").glob("*/*.png"))) == 5
    assert (tiny_run / "logs/ingest/demo/shard-00000.log").is_file()
    leftovers = [p for p in (tiny_run / "results").rglob("*") if ".tmp" in p.name]
    assert leftovers == []


def test_second_run_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_a_roi_parameter_reruns_roi_but_not_ingest(tiny_run):
    expected = {
        **DOWNSTREAM_OF_PREP,
        "roi": 3,
        "roi_index": 1,
        "enhance_shard": 3 * 9,
        "enhanced_index": 9,
        "metrics_shard": 3 * 9,
        "segmentation_task": 9,
    }
    assert dry_run_with_change(tiny_run, "roi", "upper_fraction", 0.35)[0] == expected


def test_changing_prep_lambda_reruns_prep_and_nothing_before_it(tiny_run):
    assert dry_run_with_change(tiny_run, "prep", "lambda", 1.0)[0] == DOWNSTREAM_OF_PREP


def test_raising_iterations_from_2_to_3_trains_only_iteration_3(tiny_run):
    # Iteration 3 trains on iteration 2's refined data, then the chain of 3 enhances again.
    jobs, stdout = dry_run_with_change(tiny_run, "train", "iterations", 3)
    # The recommended configuration sets its own T = 1: untouched.
    assert jobs == {
        "refine": 3,
        "train": 1,
        "publish_model": 1,
        "enhance_shard": 3,
        "enhanced_index": 1,
        "metrics_shard": 3,
        "segmentation_task": 1,
        "aggregate_metrics": 1,
        "tables": 1,
        "gallery": 1,
        "all": 1,
    }
    assert (
        "results/models/xvertnet-paper/iter3/model.pt" in stdout
        and "iter1/model.pt" not in stdout.split("rule train")[-1]
    )


def test_both_iterations_trained_with_falling_loss_and_enhanced_outputs(tiny_run):
    for model_set, iterations in XVERTNET.items():
        assert not (tiny_run / f"results/models/{model_set}/iter{iterations + 1}").exists()
        for iteration in range(1, iterations + 1):
            log = pd.read_csv(tiny_run / f"results/models/{model_set}/iter{iteration}/training/train_log.csv")
            phase1 = log[log["phase"] == 1]
            assert phase1["train_l1"].iloc[-1] < phase1["train_l1"].iloc[0], f"{model_set} iteration {iteration}"
            assert (tiny_run / f"results/models/{model_set}/iter{iteration}/training/loss_curve.png").is_file()
    for method in METHODS:
        index = pd.read_csv(tiny_run / f"results/enhanced/{method}/demo/index.csv")
        # The val and test splits (the AP view and the real image) and, for the segmentation task, the train split.
        assert sorted(index["image_id"]) == [
            "drr_lidc0001_ap_8bit",
            "drr_lidc0001_ap_standard",
            "drr_lidc0001_rotl4_8bit",
            "drr_lidc0001_rotl4_standard",
            "rg1_uncr",
        ], method
        # Only the measured splits are measured: the training images are not in the comparison.
        measured = pd.read_csv(tiny_run / "results/metrics/per_roi.csv")
        assert not measured["image_id"].str.contains("rotl4").any()
        segmented = pd.read_csv(tiny_run / f"results/segmentation/{method}.csv")
        assert sorted(set(segmented["image_id"])) == ["drr_lidc0001_ap_8bit", "drr_lidc0001_ap_standard"], method
        assert segmented["seg_dice"].between(0, 1).all() and (segmented["seg_hd95"] >= 0).all()
        columns = ["eval_upper_png", "eval_lower_png", "whole_png"]
        assert set(columns) <= set(index.columns), method
        for column in columns:
            assert all((tiny_run / path).is_file() for path in index[column]), (method, column)


def test_every_trained_baseline_records_what_it_was_trained_on(tiny_run):
    """A study outside the workflow (fracture detectability) uses these models only if no test patient trained them."""
    for method in ("zerodce", "lut-mapping"):  # the training split: lidc0001's rotated view (the AP view is test)
        record = json.loads((tiny_run / f"results/models/baselines/{method}/model.json").read_text())
        assert record["trained_on"] == {
            "images": 2,
            "source": "project images",
            "splits": ["train"],
            "image_ids": ["drr_lidc0001_rotl4_8bit", "drr_lidc0001_rotl4_standard"],
            "patients": ["lidc0001"],
            "unmapped_image_ids": [],
        }, method
    madmad = json.loads((tiny_run / "results/models/baselines/madmad/model.json").read_text())
    assert madmad["trained_on"]["source"] == "data of its own" and madmad["trained_on"]["patients"] == []


def test_prep_outputs_are_finite_with_figures(tiny_run):
    import numpy as np

    from xvertnet.io.shard_store import iter_items

    summary = pd.read_csv(tiny_run / "results/demo/prep/summary.csv")
    assert len(summary) == 5 * 4
    count = 0
    for shard in sorted((tiny_run / "results/demo/prep").glob("shard-*.h5")):
        for _, arrays, _ in iter_items(shard):
            assert len(arrays) == 12  # 4 ROIs x (X, Xp, Y)
            assert all(np.isfinite(array).all() for array in arrays.values())
            count += 1
    assert count == 5
    assert len(list((tiny_run / "results/demo/figures/prep").glob("*/*.png"))) == 5


def test_comparison_table_agrees_with_per_roi(tiny_run):
    import numpy as np
    from scipy import stats

    per_roi = pd.read_csv(tiny_run / "results/metrics/per_roi.csv")
    assert set(per_roi["method"]) == set(METHODS)
    assert len(per_roi) == 3 * 2 * len(METHODS)  # 3 val/test images x 2 ROIs x methods
    table = pd.read_csv(tiny_run / "results/tables/comparison.csv").set_index(["measure", "method"])
    test = per_roi[per_roi["split"] == "test"]
    values = test[test["method"] == "clahe"]["lpc_si"]
    kept = values[(values - values.mean()).abs() <= 1.96 * values.std(ddof=1)]
    assert table.loc[("lpc_si", "clahe"), "mean"] == pytest.approx(kept.mean())
    assert table.loc[("lpc_si", "clahe"), "std"] == pytest.approx(kept.std(ddof=1))
    wide = test.pivot_table(index=["image_id", "roi"], columns="method", values="lpc_si")
    keep = np.ones(len(wide), bool)
    for method in ("xvertnet", "clahe"):
        keep &= ((wide[method] - wide[method].mean()).abs() <= 1.96 * wide[method].std(ddof=1)).to_numpy()
    expected = stats.wilcoxon(wide.loc[keep, "xvertnet"], wide.loc[keep, "clahe"]).pvalue
    assert table.loc[("lpc_si", "clahe"), "p_value"] == pytest.approx(expected)
    markdown = (tiny_run / "results/tables/comparison.md").read_text()
    assert "LPC-SI ↑" in markdown and "vertebral CNR / original ↑" in markdown
    # The display-referred measures (whole image, one window): every DRR ROI with levels of the method's whole image,
    # none on the real radiograph, which has no level map.
    drrs = per_roi[per_roi["image_id"].str.startswith("drr_")]
    assert drrs["displayed_contrast"].notna().all() and (drrs["displayed_levels"] > 0).all()
    assert per_roi[per_roi["image_id"] == "rg1_uncr"]["displayed_contrast"].isna().all()
    assert "displayed vertebral contrast ↑" in markdown
    assert (tiny_run / "results/figures/boxplots.png").stat().st_size > 10_000
    assert (tiny_run / "results/figures/panel.png").stat().st_size > 10_000
    page = (tiny_run / "results/tables/comparison.html").read_text()
    assert "xvertnet is better than original on" in page and "n = " in page and "<table>" in page
    report = tiny_run / "results/report.html"
    result = snakemake(tiny_run, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    assert report.stat().st_size > 50_000


def test_the_report_and_the_gallery_in_headless_chromium(tiny_run):
    """What a reader sees: the report's landing page with the headline and table, the gallery working."""
    paths = chromium_paths()
    if isinstance(paths, str):
        pytest.skip(paths)
    report = tiny_run / "results/report.html"
    if not report.exists():
        assert snakemake(tiny_run, "--report", str(report)).returncode == 0
    shots = Path(os.environ.get("XVERTNET_SCREENSHOTS", tiny_run / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    driver = chromium_driver(1280, 720)
    try:
        text = check_report(driver, report, shots / "report.png")
        assert "xvertnet is better than original on" in text and "n = " in text
        assert "results/gallery/index.html" in text
        seen = check_gallery(driver, tiny_run / "results/gallery/index.html", shots / "gallery.png")
    finally:
        driver.quit()
    # Every enhanced image (3 val/test, and the training images the segmentation task enhances) x 3 parts x
    # (original + 8 methods): every one was shown.
    enhanced = pd.read_csv(tiny_run / "results/enhanced/original/demo/index.csv")
    assert seen["gallery_images"] == len(enhanced) and len(seen["links"]) == len(enhanced) * 3 * 9
    assert (shots / "report.png").stat().st_size > 20_000 and (shots / "gallery.png").stat().st_size > 20_000


def test_changing_a_metric_parameter_reruns_only_metrics_and_tables(tiny_run):
    jobs, _ = dry_run_with_change(tiny_run, "metrics", "lpc_sigma_onf", 0.33)  # the default is 0.75
    assert jobs == {
        "metrics_shard": 3 * 9,
        "aggregate_metrics": 1,
        "tables": 1,
        "gallery": 1,
        "all": 1,
    }  # the gallery prints ratios


def test_editing_a_rule_reruns_that_rule_and_what_follows(tiny_run):
    rule_file = tiny_run / "workflow/rules/prep.smk"
    original = rule_file.read_text()
    try:
        edited = original.replace('"python -m xvertnet prep ', '"python -m xvertnet  prep ')  # same command, new code
        assert edited != original
        rule_file.write_text(edited)
        result = snakemake(tiny_run, "--dry-run")
        assert result.returncode == 0, result.stderr[-2000:]
        jobs = planned_jobs(result.stdout + result.stderr)
        assert jobs["prep"] == 3 and "roi" not in jobs and "ingest" not in jobs
        assert "code has changed" in (result.stdout + result.stderr).lower() or "Code has changed" in result.stdout
    finally:
        rule_file.write_text(original)


def test_editing_a_module_a_stage_imports_indirectly_reruns_that_stage(tiny_run):
    # prep imports preprocess, which imports wls: an edit of wls.py must rerun prep, not roi.

    shutil.copytree(REPO / "src", tiny_run / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    try:
        unchanged = snakemake(tiny_run, "--dry-run")
        assert "Nothing to be done" in unchanged.stdout + unchanged.stderr  # the same code: nothing to redo
        wls = tiny_run / "src/xvertnet/preprocessing/wls.py"
        wls.write_text(wls.read_text() + "\n# an edit\n")
        edited = snakemake(tiny_run, "--dry-run")
        jobs = planned_jobs(edited.stdout + edited.stderr)
        assert jobs.get("prep") == 3 and "roi" not in jobs and "ingest" not in jobs, jobs
        # The methods registry imports farbman, which uses wls: the three learned baselines retrain.
        assert jobs.get("train_baseline") == 3 and jobs.get("enhance_shard", 0) >= 3 * 9
    finally:
        shutil.rmtree(tiny_run / "src")


def test_sigkill_mid_run_then_rerun_incomplete_equals_an_uninterrupted_run(tiny_run, tmp_path):
    """Killed mid-training, then rerun: the same per-ROI values as the uninterrupted tiny run. With the XVertNet rows
    and one untrained baseline only (a method's values do not depend on which others run), so the second whole run
    costs a third of the first."""
    import signal
    import subprocess
    import time

    workdir = make_workdir(tmp_path, {**TINY, "baselines": {**TINY["baselines"], "methods": ["clahe"]}})
    command, env = snakemake_command(workdir)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 600
    while time.time() < deadline and not list(workdir.glob("results/models/*/iter1/training/train_log.csv")):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # Snakemake and the jobs it runs, mid-training
    process.wait()
    assert not (workdir / "results/metrics/per_roi.csv").exists()
    assert snakemake(workdir, "--unlock").returncode == 0  # a killed Snakemake leaves its lock behind
    result = snakemake(workdir, "--rerun-incomplete")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = pd.read_csv(workdir / "results/metrics/per_roi.csv").drop(columns=["params"])
    straight = pd.read_csv(tiny_run / "results/metrics/per_roi.csv").drop(columns=["params"])
    assert set(resumed["method"]) == {"original", *XVERTNET, "clahe"}
    straight = straight[straight["method"].isin(set(resumed["method"]))].reset_index(drop=True)
    # atol: Zero-DCE (and the LUT mapping) retrain with 2 torch threads, whose float sums may differ in the last bits; on a
    # 128 x 73 ROI one pixel moving to the next histogram bin changes the entropy by up to about 1e-3
    # (seen: 7.4e-5 on one ROI).
    # The segmentation task trains a U-Net on each method's output: Zero-DCE's last-bit differences move
    # predicted boundary pixels across the threshold, so its segmentation values are compared loosely.
    # The LUT mapping trains on the prep crops with 2 threads as well: the same holds for it.
    seg = [column for column in straight.columns if column.startswith("seg_")]
    zerodce = straight["method"].isin(["zerodce", "lut-mapping"])
    assert resumed["method"].equals(straight["method"])
    loose = {"seg_dice": 0.15, "seg_hd95": 10.0, "seg_asd": 5.0}  # Dice; px
    for column, tolerance in loose.items():
        assert np.allclose(
            resumed.loc[zerodce, column], straight.loc[zerodce, column], atol=tolerance, equal_nan=True
        ), column
    pd.testing.assert_frame_equal(
        resumed.drop(columns=seg), straight.drop(columns=seg), check_exact=False, rtol=1e-5, atol=1e-3
    )
    pd.testing.assert_frame_equal(
        resumed.loc[~zerodce, seg], straight.loc[~zerodce, seg], check_exact=False, rtol=1e-5, atol=1e-3
    )


def test_study_shares_models_trains_internal_variants_and_reports(tiny_run, tmp_path):
    # On a copy of the tiny run: the shared run's folder stays as the run made it, whatever order the tests run in.
    run = shutil.copytree(tiny_run, tmp_path / "run", symlinks=True)
    # The tiny data set has no validation view: choose on the clean test DRR, report on the rest.
    study = {
        "study": {
            "variants": {
                "paper": {},
                "internal-x": {
                    "internal": True,
                    "iterations": 1,
                    "output_head": "anchored",
                    "inputs": ["X"],
                    "phase1_epochs": 3,
                    "phase2_epochs": 1,
                    "batch_size": 2,
                },
            },
            "select_split": "test",
            "select_conditions": ["standard"],
            "report_split": "test",
            "patient_independent": False,
        }
    }  # one patient: chosen and reported on its own images
    (run / "study.yaml").write_text(yaml.safe_dump(study))
    # the image-measure study (the observer's choice, `study`, projects the held-out CT patients: its own test)
    result = snakemake(run, "study_images", "--configfile", str(run / "study.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (run / "results/models/study-paper").exists()  # the paper variant is xvertnet-paper's model set
    summary = pd.read_csv(run / "results/study/summary.csv")
    entries = ["study-paper-T1", "study-paper-T2", "study-internal-x-T1"]
    assert set(summary["method"]) == {"original", "clahe", "preprocessed", *entries}
    assert summary["recommended"].sum() == 1 and summary.loc[summary["recommended"], "method"].item() in entries
    for entry in entries:
        assert (run / f"results/study/panels/{entry}.png").stat().st_size > 5_000
        assert (run / f"results/study/variants/{entry}.md").is_file()
    assert "Chosen on the selection DRRs" in (run / "results/study/conclusion.md").read_text()
    assert "Not patient-independent:** lidc0001" in (run / "results/study/conclusion.md").read_text()
    report = run / "results/study/report.html"
    result = snakemake(run, "study_images", "--configfile", str(run / "study.yaml"), "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    assert report.stat().st_size > 50_000


def test_this_rounds_methods_and_tables_plan_as_rows_and_targets(tiny_run):
    """led.yaml's LED and the super-resolution methods become trained baselines with enhanced shards and the
    LED report; `make sr-table`'s target plans only its own job on the cached prep shards."""
    jobs, _ = dry_run_with_change(tiny_run, "baselines", "methods", ["clahe", "led", "srcnn", "vdsr", "vdsr-dehaze"])
    assert jobs.get("train_baseline") == 4 and jobs.get("led_report") == 1, jobs
    assert jobs.get("enhance_shard", 0) >= 4 * 3 and "prep" not in jobs and "train" not in jobs
    result = snakemake(tiny_run, "--dry-run", "results/tables/super_resolution.md")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result.stdout + result.stderr) == {"sr_table": 1}
    assert "led" in yaml.safe_load((REPO / "configs/led.yaml").read_text())["baselines"]["methods"]
    assert {"srcnn", "vdsr", "vdsr-dehaze"} <= set(
        yaml.safe_load((REPO / "configs/sr.yaml").read_text())["baselines"]["methods"]
    )
