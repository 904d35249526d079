"""A loopback TCP relay: libpq connects to a local port, each connection gets its own stream to the pod.

Why: ``kubernetes.stream.portforward`` hands out one socket-like stream per websocket session, but
the engine opens many PostgreSQL connections (parallel COPY workers). The relay listens on a free
127.0.0.1 port and, per accepted connection, asks ``opener`` for a fresh stream and pumps bytes both
ways in a daemon thread. It knows nothing about Kubernetes, so it is tested with plain sockets.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

# opener() -> (stream with recv/sendall/fileno, close callback)
Opener = Callable[[], tuple[Any, Callable[[], None]]]
_CHUNK = 65536


class TcpRelay:
    """Listens on 127.0.0.1 (free port); relays every accepted connection through ``opener()``."""

    def __init__(self, opener: Opener, *, name: str = "consolidator-relay") -> None:
        self._opener = opener
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.5)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=name, daemon=True)
        self._thread.start()

    @property
    def local_port(self) -> int:
        return int(self._server.getsockname()[1])

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            stream, close_stream = self._opener()
        except Exception:  # the client sees a closed connection; libpq reports it
            client.close()
            return
        try:
            _pump(client, stream, self._closed)
        finally:
            with contextlib.suppress(Exception):
                close_stream()
            client.close()


def _pump(left: Any, right: Any, stop: threading.Event) -> None:
    """Copy bytes both ways until either side closes or the relay stops."""
    peers = {left.fileno(): (left, right), right.fileno(): (right, left)}
    while not stop.is_set():
        readable, _, _ = select.select(list(peers), [], [], 0.5)
        for fd in readable:
            src, dst = peers[fd]
            try:
                data = src.recv(_CHUNK)
            except OSError:
                return
            if not data:
                return
            dst.sendall(data)
