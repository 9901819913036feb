"""Time a 100 MB download from a local mirror on 127.0.0.1, interrupted at half-way and resumed.

    python benchmarks/download.py [--megabytes 100] [--interrupt-at 0.5]

Prints the seconds of the whole transfer (first attempt, back-off, resumed attempt, sha256
verification) and the throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    from xvertnet.io.http_download import RetryPolicy, download_file
    from xvertnet.io.mirror import serve

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--interrupt-at", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root, out = Path(folder) / "mirror", Path(folder) / "out"
        root.mkdir()
        data = os.urandom(args.megabytes * 1 << 20)
        (root / "archive.bin").write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        server = serve(root)
        server.interrupt_once["archive.bin"] = int(len(data) * args.interrupt_at)
        start = time.perf_counter()
        download_file(
            f"{server.url}/archive.bin",
            out / "archive.bin",
            size=len(data),
            checksum=("sha256", digest),
            policy=RetryPolicy(backoff=0.1, progress=False),
        )
        seconds = time.perf_counter() - start
        server.shutdown()
        resumed = [r for _, r in server.requests if r]
        print(
            f"{args.megabytes} MB, interrupted at {args.interrupt_at:.0%}, resumed with {resumed[0] if resumed else 'no range'}:"
            f" {seconds:.2f} s ({args.megabytes / seconds:.0f} MB/s), sha256 verified"
        )


if __name__ == "__main__":
    main()
