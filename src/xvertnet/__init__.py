"""xvertnet: unsupervised enhancement of vertebrae in chest X-rays (XVertNet) as a workflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xvertnet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
