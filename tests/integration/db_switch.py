"""A switchable TCP proxy in front of the test's Postgres: a database outage on demand, as a cut
(connections dropped, new ones refused) or a freeze (nothing forwarded, nothing closed)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import urllib.parse
from collections.abc import Coroutine
from typing import Any, Self


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DatabaseSwitch:
    """A TCP proxy in front of the test's Postgres that can cut every connection and refuse new
    ones, then come back on the same port: an outage the API cannot tell from a real one. Or it
    can freeze, as a stalled network path does: every socket stays open and new ones are accepted,
    but nothing is forwarded either way, not even a close; what was sent meanwhile is held and
    delivered on thaw, so a statement whose client gave up on it still reaches the server late.
    It runs its own event loop on a thread, since the test client blocks the test's loop per
    request."""

    def __init__(self, dsn: str) -> None:
        parts = urllib.parse.urlsplit(dsn)
        query = urllib.parse.parse_qs(parts.query)
        self._host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
        self._port = parts.port or int(query.get("port", ["5432"])[0])
        self._user = parts.netloc.rpartition("@")[0] or "postgres"
        self._database = parts.path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None  # made on the proxy's own loop
        self.port = 0

    @property
    def dsn(self) -> str:
        return f"postgresql://{self._user}@127.0.0.1:{self.port}{self._database}"

    def __enter__(self) -> Self:
        self._thread.start()
        self.restore()
        return self

    def __exit__(self, *_: object) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def freeze(self) -> None:
        async def stop() -> None:
            assert self._flowing is not None
            self._flowing.clear()

        self._call(stop())

    def thaw(self) -> None:
        async def go() -> None:
            assert self._flowing is not None
            self._flowing.set()

        self._call(go())

    def restore(self) -> None:
        async def listen() -> None:
            if self._flowing is None:
                self._flowing = asyncio.Event()
                self._flowing.set()
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

        self._call(listen())

    def cut(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._streams):
                writer.close()

        self._call(close())

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._host.startswith("/"):  # a socket directory, as the embedded server's DSN has
            return await asyncio.open_unix_connection(f"{self._host}/.s.PGSQL.{self._port}")
        return await asyncio.open_connection(self._host, self._port)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._upstream()
        pair = {writer, up_writer}
        self._streams |= pair

        flowing = self._flowing
        assert flowing is not None

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            # Read eagerly (a client that gives up closes its end; what it sent is already here)
            # and forward only while flowing; the end of the stream is forwarded last, likewise.
            held: asyncio.Queue[bytes] = asyncio.Queue()

            async def take() -> None:
                with contextlib.suppress(OSError):
                    while data := await source.read(65536):
                        held.put_nowait(data)
                held.put_nowait(b"")

            taking = asyncio.ensure_future(take())
            with contextlib.suppress(OSError):
                while True:
                    data = await held.get()
                    await flowing.wait()
                    if not data:
                        break
                    sink.write(data)
                    await sink.drain()
            taking.cancel()  # done already, unless the sink broke first
            with contextlib.suppress(asyncio.CancelledError):
                await taking
            sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._streams -= pair
