"""A misbehaving HTTP server on 127.0.0.1 for the download tests, built on the project's mirror.

``server.behave(name, *modes)`` scripts the answers to requests for ``name``: each request
takes the next mode, the last one repeats. Modes:

* ``"ok"``: the mirror's normal answer (Range requests honoured, 416 past the end).
* ``"chunked"``: the file in chunked transfer encoding (honours ``Range`` with a 206).
* ``"chunked_cut"``: chunked, cut after half of the file without the closing chunk.
* ``"short"``: ``Content-Length`` of the whole file, half of it sent, then the connection closed.
* ``"close_cut"``: no ``Content-Length`` (close-delimited), half of the file sent, then closed.
* ``"close"``: no ``Content-Length``, the whole file, then closed.
* ``"garbage"``: a status line that is not HTTP.
* ``"loop"``: a redirect (302) to the same URL.
* ``"500"`` (any number): that status with an empty body.

:func:`refused_url` is a URL on 127.0.0.1 where nothing listens (a bound socket that does not
accept): every connection is refused at once.
"""

from __future__ import annotations

import contextlib
import socket

from xvertnet.io.mirror import MirrorHandler, serve


class MisbehavingHandler(MirrorHandler):
    def do_GET(self):
        server = self.server
        name = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
        modes = server.behaviours.get(name, ["ok"])
        mode = modes.pop(0) if len(modes) > 1 else modes[0]
        if mode == "ok":
            super().do_GET()
            return
        server.requests.append((self.path, self.headers.get("Range")))
        self.close_connection = True
        if mode == "garbage":
            self.wfile.write(b"HELLO THERE, THIS IS NOT HTTP\r\n\r\n")
            return
        if mode == "loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode.isdigit():
            self.send_response(int(mode))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = (server.root / name).read_bytes()
        start = int(self.headers.get("Range", "bytes=0-")[6:].split("-")[0] or 0)
        body = data[start:]
        cut = body[: len(body) // 2] if mode.endswith("cut") or mode == "short" else body
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if mode.startswith("chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for offset in range(0, len(cut), 4096):
                piece = cut[offset : offset + 4096]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if mode == "chunked":
                self.wfile.write(b"0\r\n\r\n")
            return
        if mode == "short":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(cut)


def misbehaving_server(root):
    """The mirror of ``root`` on 127.0.0.1 with scripted misbehaviour; stop with ``shutdown()``."""
    server = serve(root, poll_interval=0.02)
    server.RequestHandlerClass = MisbehavingHandler
    server.behaviours = {}
    server.behave = lambda name, *modes: server.behaviours.__setitem__(name, list(modes))
    return server


@contextlib.contextmanager
def refused_url():
    """A base URL on 127.0.0.1 whose port refuses every connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
