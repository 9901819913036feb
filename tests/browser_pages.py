"""Pages in headless Chromium: the driver, console errors, images loaded, the gallery and the report."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


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
