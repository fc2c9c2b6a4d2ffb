"""A TCP load balancer on loopback for the cluster tests: what a Kubernetes Service or an HTTP load
balancer is in front of several control-plane replicas. Each connection goes to the next backend in
turn that accepts it; a backend that refuses (its process is dead) is skipped, so clients reach a
replica that lives. Bytes are copied both ways; each side's end (a clean close or a reset) is passed
on to the other as it came."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections.abc import Sequence


class Balancer:
    def __init__(self, backends: Sequence[tuple[str, int]], *, host: str = "127.0.0.1") -> None:
        self.backends = list(backends)
        self._turn = itertools.count()
        self._listener = socket.create_server((host, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="balancer").start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _connect(self) -> socket.socket | None:
        start = next(self._turn)
        for i in range(len(self.backends)):
            backend = self.backends[(start + i) % len(self.backends)]
            try:
                return socket.create_connection(backend, timeout=2)
            except OSError:
                continue
        return None

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = self._connect()
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            if self._closed:
                client.close()
                upstream.close()
                return
            self._open |= {client, upstream}
        ends = threading.Semaphore(0)  # one release per direction that ended
        threading.Thread(target=self._pipe, args=(upstream, client, ends), daemon=True).start()
        self._pipe(client, upstream, ends)
        ends.acquire()
        ends.acquire()
        self._drop(client, upstream)

    def _pipe(self, src: socket.socket, dst: socket.socket, ends: threading.Semaphore) -> None:
        """Copy one direction. Its end is passed on as the peer ended it: a clean end (FIN) closes only
        that direction, so what the other side still sends arrives (a WebSocket's last frames, e.g. a
        client's leave); a reset (a process killed) resets both sides at once, as a dead peer does.
        Closing a socket whose peer's bytes were still unread would reset the connection and drop
        what was written last."""
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
        except OSError:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        finally:
            ends.release()

    def _drop(self, *socks: socket.socket) -> None:
        for s in socks:
            s.close()
        with self._lock:
            self._open -= set(socks)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            left = list(self._open)
        self._listener.close()
        for s in left:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def __enter__(self) -> Balancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
