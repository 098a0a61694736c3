"""WebSocket transport (client side) to a simulated meter at ``ws://…/sim/meters/{serial}/link``.

Each binary WebSocket message is one whole frame, so no fragmentation is needed. The server side
is the simulator's: for every binary message it receives it sends ``endpoint.handle(message)``.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from websockets.asyncio.client import ClientConnection, connect

from citygas.meters.link.errors import MeterLinkError

__all__ = ["WebSocketTransport"]


class WebSocketTransport:
    """``async with await WebSocketTransport.connect(url) as transport: ...`` or call :meth:`close`."""

    def __init__(self, connection: ClientConnection, *, timeout: float = 10.0) -> None:
        self._connection = connection
        self._timeout = timeout
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str, *, timeout: float = 10.0) -> Self:
        connection = await connect(url, open_timeout=timeout, max_size=64 * 1024)
        return cls(connection, timeout=timeout)

    async def exchange(self, frame: bytes) -> bytes:
        async with self._lock:
            await self._connection.send(frame)
            async with asyncio.timeout(self._timeout):
                reply = await self._connection.recv()
        if not isinstance(reply, bytes):
            raise MeterLinkError("the meter link sent a text message; frames travel as binary messages")
        return reply

    async def close(self) -> None:
        await self._connection.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
