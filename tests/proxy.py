"""A loopback TCP proxy of the tests' own, to make a link to a real server misbehave.

    with Proxy((server.host, server.port)) as proxy:
        settings = {**server.database_settings(), "PORT": str(proxy.port)}
        proxy.stall(after_handshake=True)  # new links log in, then go silent
        proxy.delay(0.2)                   # every byte arrives 200 ms late
        proxy.cut()                        # every open link is reset (RST)
        proxy.pretend_version("10.4.34-MariaDB")  # the server says it is this old


One thread moves the bytes of every link with ``selectors``. The controls act on the links
open at the time and on the ones accepted later, and return once the I/O thread has applied
them. A stalled link keeps both of its sockets open and swallows whatever either side sends
(its close too): the client sees a connection that answers nothing, the server one whose
client went quiet. ``after_handshake`` understands MySQL's framing (unencrypted, as the
sandbox serves it): a link passes the greeting and the login, and stalls at the client's first
command (the first packet with sequence number 0).

``pretend_version`` rewrites what the server sends: its version string, in the greeting
and in ``SELECT VERSION()``'s answer alike, is replaced by one of the same length (padded),
so every length in MySQL's framing still holds.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

CHUNK = 65536
EPOLL_STEP = 0.001  # what the selector's wait is rounded up to


class _Side:
    """One socket of a link and the bytes queued for it, each with the time it may go."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.queue: deque[tuple[float, bytes]] = deque()
        self.eof = False  # the peer of this side closed: close this one once its queue is sent


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket, watch: bool) -> None:
        self.client, self.server = _Side(client), _Side(server)
        self.stalled = False
        self.watch = watch  # stall at the client's first command
        self.header = b""  # MySQL packet header being read from the client
        self.skip = 0  # payload bytes of the client's current packet still to pass

    def other(self, side: _Side) -> _Side:
        return self.server if side is self.client else self.client

    def first_command_at(self, data: bytes) -> int | None:
        """Where in ``data`` (from the client) its first command starts, if it does."""
        at = 0
        while at < len(data):
            if self.skip:
                step = min(self.skip, len(data) - at)
                self.skip -= step
                at += step
                continue
            start = at - len(self.header)
            need = 4 - len(self.header)
            self.header += data[at : at + need]
            at += need
            if len(self.header) < 4:
                return None
            length, sequence = self.header[:3] + b"\0", self.header[3]
            self.header = b""
            if sequence == 0:
                return max(0, start)
            self.skip = struct.unpack("<I", length)[0]
        return None


class Proxy:
    """Forwards a free port on 127.0.0.1 to ``target``; see the module's docstring."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self._listener = socket.create_server((host, 0))
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._links: list[_Link] = []
        self._mode = "forward"  # or "stall", or "handshake": what a new link does
        self._delay = 0.0
        self._rewrite: tuple[bytes, bytes] | None = None  # server's bytes -> what clients see
        self._orders: deque[tuple[Callable[[], None], threading.Event]] = deque()
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="test-proxy", daemon=True)
        self._thread.start()

    # --- controls, from any thread ---------------------------------------------------------

    def stall(self, *, after_handshake: bool = False) -> None:
        """Open links go silent now; new links are accepted (and connected to the server) but
        pass nothing, or only the MySQL handshake with ``after_handshake``."""

        def apply() -> None:
            self._mode = "handshake" if after_handshake else "stall"
            for link in self._links:
                self._stall(link)

        self._order(apply)

    def delay(self, seconds: float) -> None:
        """Every byte received from now on is passed on ``seconds`` later (0: at once)."""
        self._order(lambda: setattr(self, "_delay", float(seconds)))

    def pretend_version(self, version: str, real: str | None = None) -> str:
        """From now on the server's version string ``real`` (default: asked of the server
        through the proxy) reaches clients as ``version``, padded with ``-x...`` to the same
        length. Returns what clients see."""
        if real is None:
            real = self._real_version()
        fake = version if len(version) >= len(real) else f"{version}-".ljust(len(real), "x")
        if len(fake) != len(real):
            raise ValueError(f"{version!r} is longer than the server's {real!r}")
        rewrite = (real.encode(), fake.encode())
        self._order(lambda: setattr(self, "_rewrite", rewrite))
        return fake

    def _real_version(self) -> str:
        with socket.create_connection(self.target, timeout=5) as sock:
            header = sock.recv(4)
            payload = b""
            while len(payload) < int.from_bytes(header[:3], "little"):
                payload += sock.recv(CHUNK)
        return payload[1:].split(b"\0", 1)[0].decode().removeprefix("5.5.5-")

    def heal(self) -> None:
        """New links forward normally again, without delay (stalled links stay silent)."""

        def apply() -> None:
            self._mode, self._delay = "forward", 0.0

        self._order(apply)

    def cut(self) -> None:
        """Reset every open link (RST to both sides). New links are accepted as before."""

        def apply() -> None:
            for link in list(self._links):
                self._drop(link, reset=True)

        self._order(apply)

    @property
    def links(self) -> int:
        """How many links are open."""
        with self._lock:
            return len(self._links)

    def close(self) -> None:
        """Close every link and stop listening."""
        if not self._running:
            return
        self.cut()
        self._order(lambda: setattr(self, "_running", False))
        self._thread.join(10)
        self._selector.close()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _order(self, action: Callable[[], None]) -> None:
        done = threading.Event()
        with self._lock:
            self._orders.append((action, done))
        self._wake_w.send(b"x")
        if not done.wait(10):
            raise AssertionError("the proxy's I/O thread did not answer within 10 s")

    # --- the I/O thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        while self._running:
            due = [
                s.queue[0][0] for link in self._links for s in (link.client, link.server) if s.queue
            ]
            timeout = max(0.0, min(due) - time.monotonic()) if due else None
            if timeout is not None:  # epoll waits whole milliseconds: the rest is slept
                if timeout < EPOLL_STEP:
                    time.sleep(timeout)
                    timeout = 0.0
                else:
                    timeout -= EPOLL_STEP
            for key, _mask in self._selector.select(timeout):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._obey()
                else:
                    link, side = key.data
                    if link in self._links:
                        self._receive(link, side)
            for link in list(self._links):
                self._send(link)

    def _obey(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(CHUNK)
        while True:
            with self._lock:
                if not self._orders:
                    return
                action, done = self._orders.popleft()
            action()
            done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()  # the server is down: the client sees its connection closed
            return
        link = _Link(client, server, watch=self._mode == "handshake")
        for side in (link.client, link.server):
            side.sock.setblocking(False)
            # As MySQL's clients and servers do: a short packet goes at once, not held back
            # until the last one is acknowledged (Nagle), which would add up to 40 ms.
            side.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._selector.register(side.sock, selectors.EVENT_READ, (link, side))
        with self._lock:
            self._links.append(link)
        if self._mode == "stall":
            self._stall(link)

    def _receive(self, link: _Link, side: _Side) -> None:
        try:
            data = side.sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if link.stalled:
            if not data:  # swallowed too: this side is gone, the other hears nothing
                self._selector.unregister(side.sock)
                side.sock.close()
            return
        if not data:
            self._selector.unregister(side.sock)
            link.other(side).eof = True
            return
        if side is link.client and link.watch:
            command = link.first_command_at(data)
            if command is not None:
                self._queue(link.server, data[:command])
                self._send(link)
                self._stall(link)
                return
        if side is link.server and self._rewrite is not None:
            data = data.replace(*self._rewrite)
        self._queue(link.other(side), data)

    def _queue(self, side: _Side, data: bytes) -> None:
        if data:
            ready = time.monotonic() + self._delay
            if side.queue:
                ready = max(ready, side.queue[-1][0])  # bytes keep their order
            side.queue.append((ready, data))

    def _send(self, link: _Link) -> None:
        now = time.monotonic()
        for side in (link.client, link.server):
            while side.queue and side.queue[0][0] <= now:
                _ready, data = side.queue.popleft()
                try:
                    side.sock.settimeout(5)  # loopback: a short wait at most
                    side.sock.sendall(data)
                    side.sock.setblocking(False)
                except OSError:  # reset by the peer, or a peer that reads nothing
                    self._drop(link, reset=False)
                    return
            if side.eof and not side.queue:
                self._drop(link, reset=False)
                return

    def _stall(self, link: _Link) -> None:
        link.stalled = True
        link.client.queue.clear()
        link.server.queue.clear()

    def _drop(self, link: _Link, *, reset: bool) -> None:
        with self._lock:
            if link not in self._links:
                return
            self._links.remove(link)
        for side in (link.client, link.server):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(side.sock)
            if reset:
                with contextlib.suppress(OSError):
                    side.sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
            side.sock.close()


def settings_through(proxy: Proxy, settings_dict: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ``DATABASES`` entry that reaches its server through ``proxy``."""
    return {**settings_dict, "HOST": proxy.host, "PORT": str(proxy.port)}
