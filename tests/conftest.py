"""Shared fixtures: the real radiograph from pydicom-data and the demo data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


#: The longest test files (whole workflow runs, SLURM): started first, so that ``make test``'s two workers
#: (``--dist loadfile --no-loadscope-reorder``: one file to one worker, in this order) do not end with one of them
#: running a long file alone.
LONGEST_FIRST = ("workflow/test_workflow.py", "workflow/test_slurm.py", "workflow/test_own_runs.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.path.as_posix()
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith(name)), len(LONGEST_FIRST))

    items.sort(key=rank)


@pytest.fixture(scope="session")
def rg1_path() -> Path:
    from xvertnet.demo.demo_data import real_radiograph_path

    return real_radiograph_path()


@pytest.fixture(scope="session")
def rg1_stored(rg1_path) -> np.ndarray:
    """RG1_UNCR's stored values (uint16, 15 bits), for building fixtures in other formats."""
    import pydicom

    return pydicom.dcmread(rg1_path).pixel_array


@pytest.fixture(scope="session")
def rg1_small(rg1_stored) -> np.ndarray:
    """RG1_UNCR bone-bright in [0, 1] at 512 x 482, the stored values inverted (MONOCHROME1)."""
    from skimage.transform import resize

    image = 1.0 - rg1_stored.astype(np.float64) / (2**15 - 1)
    return resize(image, (512, 482), anti_aliasing=True)


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """The demo data set exactly as the default config.yaml builds it (about 30 s)."""
    from xvertnet.config import load_config
    from xvertnet.demo.demo_data import DemoSettings, build_demo_data

    config = load_config(REPO / "config.yaml", SCHEMA)
    folder = tmp_path_factory.mktemp("demo")
    manifest = build_demo_data(folder / "images", folder / "manifest.csv", DemoSettings.from_config(config["demo"]))
    return {"manifest_path": folder / "manifest.csv", "manifest": manifest, "config": config}


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium WebDriver for the page tests (skipped with the reason where Chromium cannot be had)."""
    from browser_pages import chromium_driver, chromium_paths

    paths = chromium_paths()
    if isinstance(paths, str):
        pytest.skip(paths)
    driver = chromium_driver()
    yield driver
    driver.quit()
