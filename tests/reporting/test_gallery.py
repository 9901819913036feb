"""The static results gallery: what it writes (unit) and how it behaves in headless Chromium."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser_pages import check_gallery, check_report, console_errors
from PIL import Image

from xvertnet.io.shard_store import open_shard_for_writing
from xvertnet.reporting.gallery import MIN_DIFFERENCE_RANGE, WHOLE_PREVIEW_WIDTH, write_gallery

IDS = ["drr_a_ap_standard", "drr_a_ap_low_dose", "drr_b_ap_standard", "rg1", "val_x", "train_y"]
MANIFEST = pd.DataFrame(
    {
        "image_id": IDS,
        "patient": ["a", "a", "b", "rg1", "a", "b"],
        "split": ["test", "test", "test", "test", "val", "train"],
        "condition": ["standard", "low_dose", "standard", "real", "standard", "standard"],
        "source": ["ct-drr"] * 3 + ["real CR"] + ["ct-drr"] * 2,
    }
)
TRANSFORMS = {"original": lambda x: x, "clahe": lambda x: np.clip(1.5 * (x - 0.5) + 0.5, 0, 1), "zssr": lambda x: x}


def _gallery_inputs(folder):
    """Enhanced shards (and their 16-bit PNG folders) of three methods over IDS; ``zssr`` changes nothing."""
    from xvertnet.io.writers import write_png16

    rng = np.random.default_rng(0)
    images = {}
    for image_id in IDS:
        whole = np.clip(rng.normal(0.5, 0.15, (96, 600)), 0, 1).astype(np.float32)
        images[image_id] = {"whole": whole, "eval_upper": whole[10:42, 280:300], "eval_lower": whole[50:82, 280:300]}
    enhanced = {}
    for method, transform in TRANSFORMS.items():
        shard = folder / method / "shard-00000.h5"
        shard.parent.mkdir(parents=True)
        with open_shard_for_writing(shard, stage="enhance", params={"method": method, "dataset": "demo"}) as writer:
            for image_id, parts in images.items():
                out = {part: transform(image).astype(np.float32) for part, image in parts.items()}
                for part, image in out.items():
                    write_png16(shard.with_suffix("") / f"{image_id}_{part}.png", image)
                writer.add(
                    image_id,
                    out,
                    {"split": "", "boxes": {"eval_upper": [10, 280, 32, 20], "eval_lower": [50, 280, 32, 20]}},
                )
        enhanced[method] = [str(shard)]
    per_roi = pd.DataFrame(
        {
            "method": ["clahe", "clahe"],
            "image_id": ["rg1", "rg1"],
            "roi": ["upper", "lower"],
            "cnr_ratio": [1.25, np.nan],
            "edge_ratio": [2.5, 3.0],
        }
    )
    return enhanced, per_roi, images


def _page_data(index):
    text = index.read_text()
    return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', text, re.S).group(1))


def test_the_gallery_orders_windows_and_links_its_images(tmp_path):
    enhanced, per_roi, images = _gallery_inputs(tmp_path / "enhanced")
    out = tmp_path / "gallery"
    assert write_gallery(enhanced, out, manifests={"demo": MANIFEST}, per_roi=per_roi, count=5) == 5
    data = _page_data(out / "index.html")
    # Real radiographs first, then test, val, train (by id); the page knows it holds 5 of 6.
    assert [image["id"] for image in data["images"]] == [
        "rg1",
        "drr_a_ap_low_dose",
        "drr_a_ap_standard",
        "drr_b_ap_standard",
        "val_x",
    ]
    assert data["total_images"] == 6 and data["methods"] == ["original", "clahe", "zssr"]
    rg1 = data["images"][0]
    assert rg1["patient"] == "rg1" and rg1["split"] == "test" and rg1["dataset"] == "demo"
    upper = rg1["parts"]["eval_upper"]["methods"]
    assert upper["clahe"]["ratios"] == {"cnr_ratio": 1.25, "edge_ratio": 2.5}
    assert rg1["parts"]["eval_lower"]["methods"]["clahe"]["ratios"] == {"edge_ratio": 3.0}  # NaN left out
    # Previews: 8-bit on the fixed window [0, 1]; whole images shrunk to the preview width, ROIs as they are.
    preview = np.asarray(Image.open(out / upper["original"]["preview"]))
    assert preview.dtype == np.uint8 and np.array_equal(
        preview, np.rint(images["rg1"]["eval_upper"] * 255).astype(np.uint8)
    )
    whole = Image.open(out / rg1["parts"]["whole"]["methods"]["clahe"]["preview"])
    assert whole.size == (WHOLE_PREVIEW_WIDTH, round(96 * WHOLE_PREVIEW_WIDTH / 600))
    # Links to the 16-bit files, relative to the page.
    linked = Image.open(out / upper["clahe"]["file"])
    assert linked.mode.startswith("I") and (out / upper["clahe"]["file"]).resolve().parent.name == "shard-00000"
    # The difference view: a method that changes nothing is white; the range is shared by the part's methods.
    unchanged = np.asarray(Image.open(out / upper["zssr"]["difference"])).astype(int)
    assert np.all(np.abs(unchanged - 247) <= 3)  # RdBu's centre, (247, 247, 247), within JPEG's error
    changed = np.abs(images["rg1"]["eval_upper"] - TRANSFORMS["clahe"](images["rg1"]["eval_upper"]))
    assert rg1["parts"]["eval_upper"]["difference_range"] == pytest.approx(
        max(MIN_DIFFERENCE_RANGE, np.percentile(changed, 99.5)), abs=1e-3
    )
    assert "original" not in [k for k, v in upper.items() if "difference" in v]
    # ROI boxes on the whole image as fractions of its size.
    assert rg1["parts"]["whole"]["boxes"]["upper"] == pytest.approx([10 / 96, 280 / 600, 32 / 96, 20 / 600])


def test_the_gallery_needs_the_original():
    from xvertnet.errors import XvertnetError

    with pytest.raises(XvertnetError, match="original"):
        write_gallery({"clahe": []}, "unused")


def test_the_gallery_in_headless_chromium(tmp_path, browser):
    enhanced, per_roi, _ = _gallery_inputs(tmp_path / "enhanced")
    write_gallery(enhanced, tmp_path / "gallery", manifests={"demo": MANIFEST}, per_roi=per_roi, count=6)
    seen = check_gallery(browser, tmp_path / "gallery" / "index.html")
    # 6 images at 6 per page: one page per view; per image 3 parts x (original + 2 methods, each 2 images in the slider).
    assert seen["pages"] == 2
    assert seen["images"] == 6 * 3 * 5 + 6 * 3 * 3
    assert len(seen["links"]) == 6 * 3 * 3


def test_a_broken_gallery_image_is_caught(tmp_path, browser):
    """The check can fail: a preview deleted after writing is reported as not loading."""
    enhanced, per_roi, _ = _gallery_inputs(tmp_path / "enhanced")
    write_gallery(enhanced, tmp_path / "gallery", manifests={"demo": MANIFEST}, per_roi=per_roi, count=2)
    next((tmp_path / "gallery" / "previews" / "clahe").glob("rg1_whole.png")).unlink()
    with pytest.raises(AssertionError, match="did not load"):
        check_gallery(browser, tmp_path / "gallery" / "index.html")
    console_errors(browser)  # drain the log of the failed load


@pytest.mark.skipif(
    not os.environ.get("XVERTNET_DEMO_RESULTS"),
    reason="set XVERTNET_DEMO_RESULTS to a `make demo` results folder to check its report and gallery",
)
def test_the_demo_results_in_headless_chromium(browser):
    """The docs' screenshots: `make demo`'s report and gallery, checked like the tiny run's and photographed."""
    results = Path(os.environ["XVERTNET_DEMO_RESULTS"])
    shots = Path(os.environ.get("XVERTNET_SCREENSHOTS", results / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 720)
    text = check_report(browser, results / "report.html", shots / "report_landing.png")
    assert "xvertnet is better than original on" in text
    browser.set_window_size(1280, 900)
    seen = check_gallery(browser, results / "gallery" / "index.html", shots / "gallery.png")
    assert seen["pages"] >= 2 and seen["links"]


def test_odd_image_ids_and_manifest_text_cannot_break_the_page(tmp_path, browser):
    """An id with '#', '%' and a space, and a patient name that would end or comment out a script element."""
    from xvertnet.io.writers import write_png16

    image = np.full((40, 30), 0.4, np.float32)
    enhanced = {}
    for method, value in (("original", 0.4), ("clahe", 0.6)):
        shard = tmp_path / method / "shard-00000.h5"
        with open_shard_for_writing(shard, stage="enhance", params={"method": method, "dataset": "demo"}) as writer:
            for image_id in ("scan#1 50%", "plain"):
                out = {"whole": np.full_like(image, value), "eval_upper": np.full((8, 6), value, np.float32)}
                for part, pixels in out.items():
                    write_png16(shard.with_suffix("") / f"{image_id}_{part}.png", pixels)
                writer.add(image_id, out, {"split": "", "boxes": {}})
        enhanced[method] = [str(shard)]
    manifest = pd.DataFrame(
        {"image_id": ["scan#1 50%", "plain"], "patient": ["<!--<script>", "</script><b>x"], "split": ["test", "test"]}
    )
    write_gallery(enhanced, tmp_path / "gallery", manifests={"demo": manifest})
    seen = check_gallery(browser, tmp_path / "gallery" / "index.html")
    assert seen["gallery_images"] == 2 and len(seen["links"]) == 2 * 2 * 2
    assert set(browser.execute_script("return DATA.images.map(i => i.patient)")) == {"</script><b>x", "<!--<script>"}
