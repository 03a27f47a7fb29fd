"""Spread connections over the workers of one server (issue #18): least connections first.

BentoML's arbiter (circus) opens one listening socket and hands it to every worker, whose event
loop (uvloop, through uvicorn) accepts *every* connection waiting when it wakes. Two keep-alive
clients connecting together therefore usually landed on the same worker (19 of 27 benchmark
rounds), which scored both while the other idled: half the machine for a batch client. The
kernel wakes every worker on a new connection; whichever runs first took them all, and the one
already busy with a connection's request runs first more often than the one asleep.

`balance_accepts(loop, ...)` (called by the service in each of several workers, on the loop
uvicorn is about to listen on) makes the next `loop.create_server(..., sock=...)` (uvicorn's call
for the inherited socket) return an `AcceptOneAtATime` server instead. It accepts one connection
per wake-up and hands it to the loop (`connect_accepted_socket`: the same transport and protocol
as before). The workers publish how many connections each has open (`ConnectionCounts`, a small
shared file); a worker that has more open than another live worker leaves a new connection to
it for `defer_s`, then takes it if it is still waiting (that worker may be stuck), so no
connection waits much longer than `defer_s` for an accept, and none at all while the workers
are even.

SO_REUSEPORT per worker (circus' `so_reuseport`, which BentoML 1.4 neither exposes nor could use:
circus re-creates such a socket from a config BentoML does not write) was not used: the kernel
picks a worker by a hash of the client's address and port, so two connections still share a
worker half the time, and the connections queued on a dying worker's own socket are reset.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import mmap
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# A worker with more connections open than another waits this long before taking a new one: longer
# than the other is likely to wait for a core on a busy machine (5 ms lost 1 round in 8 at load 5).
DEFER_S = 0.02
# accept() errors that are about resources, not the connection: retry after a second (as asyncio does).
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RESOURCE_RETRY_S = 1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ConnectionCounts:
    """Each worker's open connections, in a file all workers of one server map: one slot of
    (pid, count) per circus worker id (1 .. slots; circus reuses the ids of dead workers). A
    slot counts while its pid is alive, so a killed worker's stale count is ignored."""

    def __init__(self, path: Path, slots: int, worker_id: int):
        if not 1 <= worker_id <= slots:
            raise ValueError(f"worker id {worker_id} outside 1..{slots}")
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = slots * 16
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._cells = memoryview(self._map).cast("q")  # 8-byte aligned: each write is atomic
        self._closed = False
        self._me = worker_id - 1
        self._pid = os.getpid()
        self._cells[2 * self._me + 1] = 0
        self._cells[2 * self._me] = self._pid

    @classmethod
    def for_server(cls, sock: socket.socket, slots: int, worker_id: int) -> ConnectionCounts:
        """The file of the server this worker belongs to: its arbiter (the parent) and port."""
        port = sock.getsockname()[1]
        return cls(Path(tempfile.gettempdir()) / f"clientlens-connections-{os.getppid()}-{port}", slots, worker_id)

    def publish(self, count: int) -> None:
        """This worker's open connections; nothing once it has left (`close`): a connection closed after
        its server (uvicorn's shutdown closes the server, then the connections) reports to no one."""
        if not self._closed:
            self._cells[2 * self._me + 1] = count

    def fewest_elsewhere(self) -> int | None:
        """The fewest open connections of another live worker (None: no other is up)."""
        cells = self._cells
        counts = [
            cells[2 * i + 1]
            for i in range(len(cells) // 2)
            if i != self._me and cells[2 * i] > 0 and _alive(cells[2 * i])
        ]
        return min(counts) if counts else None

    def close(self) -> None:
        """This worker leaves (its slot reads as empty); the last one out removes the file."""
        self._cells[2 * self._me] = 0
        self._cells[2 * self._me + 1] = 0
        others = self.fewest_elsewhere()
        self._closed = True
        self._cells.release()
        self._map.close()
        if others is None:
            self.path.unlink(missing_ok=True)


class AcceptOneAtATime:
    """An `asyncio.Server` stand-in for one listening socket shared with other workers: one
    accept per wake-up, deferred for `defer_s` while this worker has more connections open than
    another (`counts`). What uvicorn uses of a server: `close`, `wait_closed`, `sockets`,
    `is_serving`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Any,
        sock: socket.socket,
        counts: ConnectionCounts,
        defer_s: float = DEFER_S,
    ):
        self._loop = loop
        self._factory = protocol_factory
        self._sock = sock
        self.counts = counts
        self._defer_s = defer_s
        self._fd = sock.fileno()
        self._rearm: asyncio.TimerHandle | None = None
        self._publisher: asyncio.TimerHandle | None = None
        self._serving = False
        self._connecting: set[asyncio.Task] = set()
        self._transports: set[asyncio.BaseTransport] = set()
        self.accepted = 0
        self.deferred = 0
        sock.setblocking(False)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)

    def is_serving(self) -> bool:
        return self._serving

    def start(self) -> AcceptOneAtATime:
        self._serving = True
        self._watch()
        self._publish()
        return self

    def watching(self) -> bool:
        """Whether this worker is watching the socket for a connection now: serving, and not paused (a
        deferral or a retry after an accept error, during which only the other workers take connections)."""
        return self._serving and self._rearm is None

    def open_connections(self) -> int:
        for transport in [t for t in self._transports if t.is_closing()]:
            self._transports.discard(transport)
        return len(self._transports) + len(self._connecting)

    def _publish(self) -> None:
        """Now and every 50 ms (a backstop: each lost connection publishes at once)."""
        self.counts.publish(self.open_connections())
        if self._serving:
            self._publisher = self._loop.call_later(0.05, self._publish)

    def _watch(self) -> None:
        self._rearm = None
        if self._serving:
            self._loop.add_reader(self._fd, self._on_readable)

    def _pause(self, seconds: float, then: Any = None) -> None:
        self._loop.remove_reader(self._fd)
        self._rearm = self._loop.call_later(seconds, then or self._watch)

    def _on_readable(self) -> None:
        mine = self.open_connections()
        self.counts.publish(mine)
        fewest = self.counts.fewest_elsewhere()
        if fewest is not None and mine > fewest:  # another worker has fewer: its turn first
            self.deferred += 1
            self._pause(self._defer_s, self._after_deferral)
            return
        self._accept()

    def _after_deferral(self) -> None:
        """Take the connection if it is still waiting (the other worker is stuck), then watch again."""
        self._rearm = None
        if self._serving and self._accept():
            self._watch()

    def _accept(self) -> bool:
        """Accept one connection if one waits; False when accepting is paused after an error."""
        try:
            conn, _addr = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return True  # another worker took it (or the client gave up): keep watching
        except OSError as exc:
            if exc.errno not in RESOURCE_ERRNOS:
                raise
            logger.warning("cannot accept a connection (%s); retrying in %.0f s", exc, RESOURCE_RETRY_S)
            self._pause(RESOURCE_RETRY_S)
            return False
        self.accepted += 1
        conn.setblocking(False)
        task = self._loop.create_task(self._connect(conn))
        self._connecting.add(task)
        self.counts.publish(self.open_connections())
        return True

    def _protocol(self) -> Any:
        """uvicorn's protocol, telling the counts when its connection is lost (the 50 ms
        `_publish` catches a connection whose protocol was swapped, as on a websocket upgrade)."""
        protocol = self._factory()
        lost = protocol.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            try:
                lost(exc)
            finally:
                self.counts.publish(self.open_connections())

        protocol.connection_lost = connection_lost
        return protocol

    async def _connect(self, conn: socket.socket) -> None:
        try:
            transport, _protocol = await self._loop.connect_accepted_socket(self._protocol, conn)
            self._transports.add(transport)
        except Exception:
            logger.exception("could not set up an accepted connection")
            conn.close()
        finally:
            self._connecting.discard(asyncio.current_task())

    def close(self) -> None:
        """Stop accepting (open connections are the caller's, as with `asyncio.Server.close`)."""
        if not self._serving:
            return
        self._serving = False
        for handle in (self._rearm, self._publisher):
            if handle is not None:
                handle.cancel()
        self._rearm = self._publisher = None
        self._loop.remove_reader(self._fd)
        self.counts.close()

    async def wait_closed(self) -> None:
        if self._connecting:
            await asyncio.gather(*self._connecting, return_exceptions=True)


def balance_accepts(loop: asyncio.AbstractEventLoop, workers: int, worker_id: int, defer_s: float = DEFER_S) -> None:
    """Serve the next plain listening socket given to `loop.create_server(sock=...)` with
    `AcceptOneAtATime`, as worker `worker_id` (circus' id, 1-based) of `workers`; every other
    call (and every later one) is the loop's own. Where the shared counts cannot be set up, the
    loop's own server (and a warning)."""
    original = loop.create_server

    async def create_server(protocol_factory: Any, host: Any = None, port: Any = None, **kwargs: Any) -> Any:
        sock = kwargs.get("sock")
        plain = host is None and port is None and kwargs.get("ssl") is None
        if sock is None or not plain or sock.type != socket.SOCK_STREAM:
            return await original(protocol_factory, host, port, **kwargs)
        loop.__dict__.pop("create_server", None)  # once: the loop's own method again
        try:
            counts = ConnectionCounts.for_server(sock, 2 * workers, worker_id)  # circus ids go up to 2x
        except (OSError, ValueError) as exc:
            logger.warning("connections will not be balanced over the workers: %s", exc)
            return await original(protocol_factory, host, port, **kwargs)
        return AcceptOneAtATime(loop, protocol_factory, sock, counts, defer_s).start()

    loop.create_server = create_server  # type: ignore[method-assign]
