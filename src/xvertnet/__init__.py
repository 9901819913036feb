"""xvertnet: unsupervised enhancement of vertebrae in chest X-rays (XVertNet) as a workflow."""

import os
from importlib.metadata import PackageNotFoundError, version

# Every HDF5 file is written once under a temporary name and renamed, never updated in place,
# so HDF5's POSIX file locks buy nothing and fail or stall on NFS/Lustre: off unless the
# environment says otherwise (read by the HDF5 library when a file is opened).
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

try:
    __version__ = version("xvertnet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
