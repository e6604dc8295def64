"""A loopback HTTP server for the download tests: files from a dict, a request log, and
misbehaviours on demand (stall after connecting, truncate, 404). Never the internet."""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Loopback:
    """``with Loopback({"/a/b.pt": b"..."}) as server: server.url`` -> ``http://127.0.0.1:PORT``.

    ``server.stall`` (a set of paths) makes those requests hang after the headers;
    ``server.truncate`` sends only half of the body but announces all of it;
    ``server.requests`` lists every path asked for, and ``server.calls`` every
    ``(method, path)``.
    """

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.stall: set[str] = set()
        self.truncate: set[str] = set()
        self.slow: set[str] = set()  # one second before the body
        self.requests: list[str] = []
        self.calls: list[tuple[str, str]] = []  # (HTTP method, path) of every request
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):  # noqa: N802
                self._answer(body=False)

            def do_GET(self):  # noqa: N802
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = self.path.split("?")[0]
                outer.requests.append(path)
                outer.calls.append((self.command, path))
                data = outer.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not body:
                    return
                if path in outer.slow:
                    time.sleep(1.0)
                if path in outer.stall:
                    outer._stop.wait(60)
                    return
                if path in outer.truncate:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add_folder(self, prefix: str, folder: Path, gzip_files: bool = False) -> None:
        """Serve every file of ``folder`` as ``<prefix>/<name>`` (``<name>.gz`` gzipped)."""
        for path in sorted(folder.iterdir()):
            if path.is_file():
                data = path.read_bytes()
                if gzip_files:
                    self.files[f"{prefix}/{path.name}.gz"] = gzip.compress(data, 1, mtime=0)
                else:
                    self.files[f"{prefix}/{path.name}"] = data

    def __enter__(self) -> Loopback:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        time.sleep(0.05)
