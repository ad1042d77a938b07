"""HTTP over a unix domain socket, as PythonAnywhere's ASGI system serves a site
(``uvicorn --uds ${DOMAIN_SOCKET}``): a GET and a wait until the socket answers."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable
from pathlib import Path


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def get(path: Path, url: str) -> tuple[int, bytes]:
    """``GET url`` from the server listening on the socket at ``path``."""
    return answer(UnixHTTPConnection(path), url)


def answer(conn: http.client.HTTPConnection, url: str) -> tuple[int, bytes]:
    """``GET url`` on ``conn`` (then closed): the status and the body."""
    try:
        conn.request("GET", url)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_until_serving(path: Path, url: str, gone: Callable[[], bool], seconds: float = 30) -> bool:
    """Whether the server on ``path`` answers ``url`` within ``seconds`` (False at once when
    ``gone()``: its process ended)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not gone():
        try:
            get(path, url)
        except OSError:
            time.sleep(0.05)
            continue
        return True
    return False
