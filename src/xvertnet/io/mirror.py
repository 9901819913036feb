"""A local mirror: serve a folder of data-set archives over HTTP with Range support.

For sites whose compute nodes have no internet (download once, serve inside), for the tests
(a server on 127.0.0.1) and for ``benchmarks/download.py``. Point a data set at it with
``datasets[].base_url: http://host:port`` or ``XVERTNET_BASE_URL_<NAME>``.

    python -m xvertnet.io.mirror /data/archives --port 8000

``server.interrupt_once[name] = n`` makes the next transfer of ``name`` stop after ``n``
bytes (to exercise resuming).
"""

from __future__ import annotations

import argparse
import http.server
import mimetypes
import threading
from pathlib import Path


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """GET files from ``server.root`` by name (any leading path is ignored); honours ``Range: bytes=N-``.

    A range starting at or past the end is answered with 416 and ``Content-Range: bytes */size``.
    """

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        name = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
        path = server.root / name
        if not name or not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start = 0
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][6:].split("-")[0] or 0)
            if start >= size:  # nothing left to send: 416, as real servers answer
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Content-Type", mimetypes.guess_type(name)[0] or "application/octet-stream")
        self.end_headers()
        limit = server.interrupt_once.pop(name, None)
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining = size - start if limit is None else min(limit, size - start)
            while remaining > 0:
                block = handle.read(min(1 << 20, remaining))
                if not block:
                    break
                self.wfile.write(block)
                remaining -= len(block)
        if limit is not None:
            self.close_connection = True


def serve(
    root, *, host: str = "127.0.0.1", port: int = 0, poll_interval: float = 0.5
) -> http.server.ThreadingHTTPServer:
    """Start a mirror of ``root`` in a background thread; ``server.url`` is its base URL.

    Stop with ``shutdown()``, which waits up to ``poll_interval`` seconds (tests use a short one).
    """
    server = http.server.ThreadingHTTPServer((host, port), MirrorHandler)
    server.root, server.requests, server.interrupt_once = Path(root), [], {}
    server.url = f"http://{host}:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="serve a folder of data-set archives (Range requests supported)")
    parser.add_argument("root", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = serve(args.root, host=args.host, port=args.port)
    print(f"serving {args.root} at {server.url}")
    threading.Event().wait()


if __name__ == "__main__":
    main()
