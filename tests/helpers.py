"""Helpers shared by the tests (one module; no test file imports another)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import yaml
from PIL import Image
from scipy import ndimage

from xvertnet.preprocess import PrepParams, preprocess
from xvertnet.shard_store import EVAL_ROIS, TRAIN_ROIS, open_shard_for_writing

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
#: The workflow test configurations (``.test/``): a tiny demo run and the SLURM run.
TEST_CONFIGS = REPO / ".test"


def load_test_config(name: str) -> dict:
    """A workflow test configuration from ``.test/<name>.yaml``."""
    return yaml.safe_load((TEST_CONFIGS / f"{name}.yaml").read_text())


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "--directory",
        str(workdir),
        "--snakefile",
        str(workdir / "Snakefile"),
        *args,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    lines = output.splitlines()
    if "Job stats:" not in lines:
        return {}
    table = lines[lines.index("Job stats:") + 3 :]
    jobs = {}
    for line in table:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def dry_run_with_change(workdir: Path, section: str, key: str, value) -> tuple[dict[str, int], str]:
    """(planned jobs, stdout) of a dry run with one config key changed (through an extra --configfile)."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config.setdefault(section, {})[key] = value
    changed = workdir / f"changed_{section}_{key}.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--dry-run", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr[-2000:]
    return planned_jobs(result.stdout + result.stderr), result.stdout


def make_workdir(tmp_path: Path, config: dict) -> Path:
    workdir = tmp_path / "run"
    workdir.mkdir()
    shutil.copy(REPO / "Snakefile", workdir)
    shutil.copytree(REPO / "workflow", workdir / "workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def synthetic_shards(folder: Path, *, size: int = 32, images: int = 8) -> list[Path]:
    """Two data shards of smooth random 'radiographs' with vertical bright bars, preprocessed by Eqs. 1-6."""
    rng = np.random.default_rng(0)
    params = PrepParams()
    paths = []
    for shard_index in range(2):
        path = folder / f"shard-{shard_index:05d}.h5"
        with open_shard_for_writing(
            path, stage="prep", params=params.record(), upstream={"roi": {"canonical_height": 64}}
        ) as shard:
            for index in range(images // 2):
                arrays = {}
                for roi in (*TRAIN_ROIS, *EVAL_ROIS):
                    image = ndimage.gaussian_filter(rng.random((size, size)), 2)
                    image[:, size // 2 - 3 : size // 2 + 3] += 0.3 * (1 + np.sin(np.arange(size) / 2))[:, None]
                    image = (image - image.min()) / (image.max() - image.min())
                    result = preprocess(image, params)
                    arrays.update({f"{roi}/{key}": result[key] for key in ("X", "Xp", "Y")})
                split = "val" if index == 0 else "train"
                shard.add(f"img{shard_index}{index}", arrays, {"split": split, "boxes": {}, "scale": 1.0})
        paths.append(path)
    return paths


def bad_files(tmp_path, rg1_path, rg1_small):
    import tifffile

    files = {}
    files["zero-byte"] = tmp_path / "empty.png"
    files["zero-byte"].write_bytes(b"")
    good = write_png(tmp_path / "good.png", np.rint(rg1_small * 255).astype(np.uint8))
    data = good.read_bytes()
    files["truncated"] = tmp_path / "truncated.png"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text-as-dicom"] = tmp_path / "notes.dcm"
    files["text-as-dicom"].write_text("this is a radiology report, not an image\n")
    ds = pydicom.dcmread(rg1_path)
    del ds.PixelData
    files["no-pixel-data"] = tmp_path / "nopixels.dcm"
    ds.save_as(files["no-pixel-data"])
    files["one-pixel"] = write_png(tmp_path / "one.png", np.zeros((1, 1), np.uint8))
    files["size-bomb-png"] = bomb_png(tmp_path / "bomb.png")
    ds = pydicom.dcmread(rg1_path)
    ds.Rows, ds.Columns = 65535, 65535
    files["size-bomb-dicom"] = tmp_path / "bomb.dcm"
    ds.save_as(files["size-bomb-dicom"])
    nan = rg1_small.astype(np.float32).copy()
    nan[10, 10] = np.nan
    files["nan-tiff"] = tmp_path / "nan.tif"
    tifffile.imwrite(files["nan-tiff"], nan)
    files["unknown-format"] = tmp_path / "image.xyz"
    files["unknown-format"].write_bytes(b"\x00" * 100)
    files["all-zero"] = write_png(tmp_path / "blank.png", np.zeros((64, 64), np.uint8))
    files["near-constant"] = write_png(tmp_path / "near_blank.png", near_constant_image())
    return files


def near_constant_image() -> np.ndarray:
    """A blank exposure: grey 100 +- 1 with a small burnt-in label (60 of 16384 pixels at 255)."""
    image = (100 + np.random.default_rng(1).integers(-1, 2, (128, 128))).astype(np.uint8)
    image[4:9, 4:16] = 255
    return image


EXPECTED_REASONS = {
    "zero-byte": "empty file",
    "truncated": "cannot decode PNG",
    "text-as-dicom": "not a DICOM file",
    "no-pixel-data": "without Pixel Data",
    "one-pixel": "below the minimum side",
    "size-bomb-png": "exceeds the limit",
    "size-bomb-dicom": "exceeds the limit",
    "nan-tiff": "NaN or Inf",
    "unknown-format": "unsupported format",
    "all-zero": "constant image (every pixel = 0), nothing to enhance",
    "near-constant": "near-constant image (99 % of the pixels within",
}
#: Files the readers read and ingest refuses (nothing to enhance): the reason is ``flat_image_reason``'s.
REFUSED_AFTER_READING = ("all-zero", "near-constant")


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Run ``xvertnet argv`` in this process: the exit code and its error line, asserted to be the only line it printed
    to stderr besides log records ("" when it succeeded)."""
    from xvertnet.cli import main

    capsys.readouterr()
    code = main([str(arg) for arg in argv])
    lines = [
        line for line in capsys.readouterr().err.splitlines() if not line.startswith(("DEBUG ", "INFO ", "WARNING "))
    ]
    if code == 0:
        assert lines == [], lines
        return code, ""
    prefix = f"xvertnet {argv[0]}: error: "
    assert len(lines) == 1 and lines[0].startswith(prefix), lines
    return code, lines[0][len(prefix) :]


def run_cli_subprocess(*argv, cwd=None) -> subprocess.CompletedProcess:
    """``python -m xvertnet argv`` in a fresh interpreter (what a user's terminal shows), text output captured."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "xvertnet", *map(str, argv)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def write_png(path, array):
    Image.fromarray(array).save(path, format="PNG")
    return path


def bomb_png(path, width=100_000, height=100_000):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    return path


# -- headless Chromium (the report and the results gallery) ------------------------------------


def chromium_paths() -> tuple[str, str] | str:
    """(chromium, chromedriver) from Debian's packages, installed when missing and possible, or the reason not."""

    def find():
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        driver = shutil.which("chromedriver")
        return (browser, driver) if browser and driver else None

    if find():
        return find()
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "no chromium and chromedriver on PATH, and apt-get cannot install them here (not root or no apt-get)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1200)
    return (
        find() or f"apt-get install chromium chromium-driver failed: {(result.stderr or result.stdout).strip()[-300:]}"
    )


def chromium_driver(width: int = 1280, height: int = 900):
    """A headless Chromium WebDriver keeping the page's console messages (``driver.get_log('browser')``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for_images(driver, timeout: float = 30.0) -> list[str]:
    """Wait until every <img> of the page has finished loading; return the sources of those that failed."""
    import time

    script = "return [...document.images].filter(i => !i.complete).length"
    deadline = time.monotonic() + timeout
    while driver.execute_script(script) and time.monotonic() < deadline:
        time.sleep(0.1)
    return driver.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )


def check_gallery(driver, index_html: Path, screenshot: Path | None = None) -> dict:
    """Load a results gallery and exercise it as a reader would; assert what must hold; return what it saw.

    Every image of every page and part loads (slider and difference views), the console stays free of
    errors, the slider moves the split, a filter narrows the cards to its value, every 16-bit link exists."""
    from urllib.parse import unquote, urlparse

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver.get(index_html.resolve().as_uri())
    failed = wait_for_images(driver)
    assert failed == [], f"images that did not load: {failed[:5]}"
    if screenshot is not None:
        driver.save_screenshot(str(screenshot))
    seen = {
        "pages": 0,
        "images": 0,
        "links": set(),
        "gallery_images": driver.execute_script("return DATA.images.length"),
    }
    Select(driver.find_element(By.ID, "filter-part")).select_by_value("")  # every part
    for view in ("slider", "difference"):
        Select(driver.find_element(By.ID, "view")).select_by_value(view)
        while driver.execute_script("return document.getElementById('previous').disabled") is False:
            driver.find_element(By.ID, "previous").click()
        while True:
            failed = wait_for_images(driver)
            assert failed == [], f"{view} view: images that did not load: {failed[:5]}"
            seen["pages"] += 1
            seen["images"] += driver.execute_script("return document.images.length")
            seen["links"] |= {a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a.file")}
            following = driver.find_element(By.ID, "next")
            if not following.is_enabled():
                break
            following.click()
    for link in seen["links"]:
        assert Path(unquote(urlparse(link).path)).is_file(), f"16-bit link does not resolve: {link}"
    Select(driver.find_element(By.ID, "view")).select_by_value("slider")
    after = driver.find_element(By.CSS_SELECTOR, ".compare img.after")
    before_clip = driver.execute_script("return getComputedStyle(arguments[0]).clipPath", after)
    slider = driver.find_element(By.CSS_SELECTOR, ".compare input[type=range]")
    slider.send_keys(*([Keys.ARROW_RIGHT] * 20))
    moved_clip = driver.execute_script("return getComputedStyle(arguments[0]).clipPath", after)
    assert slider.get_attribute("value") == "70" and moved_clip != before_clip, (before_clip, moved_clip)
    seen["clip"] = (before_clip, moved_clip)
    patients = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#filter-patient option")][1:]
    if patients:
        Select(driver.find_element(By.ID, "filter-patient")).select_by_value(patients[-1])
        metas = [m.text for m in driver.find_elements(By.CSS_SELECTOR, ".card .meta")]
        assert metas and all(f"patient: {patients[-1]}" in m for m in metas), metas
    assert console_errors(driver) == []
    return seen


def check_report(driver, report_html: Path, screenshot: Path | None = None) -> str:
    """Load a Snakemake report; its landing page must show the comparison inline from its top, with no console error."""
    import time

    from selenium.webdriver.common.by import By

    driver.get(report_html.resolve().as_uri())
    deadline = time.monotonic() + 30
    while not driver.find_elements(By.CSS_SELECTOR, ".xv-comparison") and time.monotonic() < deadline:
        time.sleep(0.2)
    landing = driver.find_element(By.CSS_SELECTOR, ".xv-comparison")
    top = driver.execute_script("return arguments[0].closest('.document').getBoundingClientRect().top", landing)
    assert top >= 0, f"the landing page starts {-top:.0f} px above the window"
    if screenshot is not None:
        driver.save_screenshot(str(screenshot))
    assert console_errors(driver) == []
    return driver.find_element(By.CSS_SELECTOR, ".document").text
