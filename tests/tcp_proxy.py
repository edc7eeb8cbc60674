"""A small TCP proxy for fault tests: it stands between the app and PostgreSQL or Redis and can
cut every connection, hang (accept and hold, forward nothing) or forward again.

Everything binds 127.0.0.1 on a port the OS picks; every thread is a daemon that checks a
stop flag at least every 50 ms, and `stop()` closes every socket it holds.
"""

import contextlib
import select
import socket
import struct
import threading

FORWARD = "forward"
HANG = "hang"
CUT = "cut"
_TICK = 0.05


class TcpProxy:
    """Listens on 127.0.0.1:`port` and forwards to `target_host`:`target_port` while the mode
    is FORWARD; in HANG it forwards nothing (both ways) and holds new connections silent; in
    CUT it resets every connection and refuses (resets) new ones."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.mode = FORWARD
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_TICK)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def hang(self) -> None:
        """Stop forwarding: connections stay open, nothing arrives either way."""
        self.mode = HANG

    def cut(self) -> None:
        """Reset every connection now; new ones are reset as they arrive."""
        self.mode = CUT
        self._close_all()

    def restore(self) -> None:
        """Forward again. Connections held while hanging are closed: their clients gave up."""
        previous, self.mode = self.mode, FORWARD
        if previous == HANG:
            self._close_all()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        self._listener.close()
        self._close_all()

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.stop()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _reset(sock)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _address = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self.mode == CUT:
                _reset(client)
                continue
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        while self.mode == HANG and not self._stopping.is_set():
            self._stopping.wait(_TICK)
        if self.mode != FORWARD or self._stopping.is_set():
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            _reset(client)
            return
        self._track(upstream)
        pair = {client: upstream, upstream: client}
        try:
            while not self._stopping.is_set() and self.mode != CUT:
                if self.mode == HANG:
                    self._stopping.wait(_TICK)
                    continue
                readable, _w, _x = select.select(list(pair), [], [], _TICK)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):  # ValueError: select() on a socket closed meanwhile
            return
        finally:
            _reset(client)
            _reset(upstream)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed server or a dropped route looks."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
