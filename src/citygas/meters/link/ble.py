"""BLE GATT transport (client side) for real meters, using ``bleak`` (an optional extra:
``pip install bleak``). Imported lazily, so the rest of the package works without it.

The meter exposes one primary service with two characteristics (UUIDs in ``docs/meter-link.md``):
the phone writes request chunks to RX (write with response) and receives response chunks as TX
notifications. Frames are cut into ATT_MTU − 3 byte chunks and reassembled by the length field.

Not tested here: there is no Bluetooth adapter or meter in CI. The framing it relies on
(:func:`fragment`, :class:`Reassembler`) is tested.
"""

from __future__ import annotations

import asyncio
import importlib
from types import TracebackType
from typing import Any, Final, Self

from citygas.meters.link.errors import FrameError, MeterLinkError
from citygas.meters.link.frames import BLE_DEFAULT_CHUNK, Reassembler, fragment

__all__ = ["METER_LINK_RX_UUID", "METER_LINK_SERVICE_UUID", "METER_LINK_TX_UUID", "BleTransport"]

METER_LINK_SERVICE_UUID: Final = "730e5691-cfad-47c5-9b6e-55d5b6cb92d1"
METER_LINK_RX_UUID: Final = "bd1393c7-59f0-4ca7-9b45-58eefb6d3494"  # phone → meter, write with response
METER_LINK_TX_UUID: Final = "a8105855-c8e0-42c8-931d-5917a6b980ee"  # meter → phone, notify


def _bleak() -> Any:
    try:
        return importlib.import_module("bleak")
    except ImportError as exc:
        raise MeterLinkError(
            "the BLE transport needs the optional 'bleak' package: pip install bleak"
        ) from exc


class BleTransport:
    """``async with await BleTransport.connect(address) as transport: ...``"""

    def __init__(self, client: Any, *, timeout: float = 10.0) -> None:
        self._client = client
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._reassembler = Reassembler()
        self._frames: asyncio.Queue[bytes | FrameError] = asyncio.Queue()
        mtu = int(getattr(client, "mtu_size", BLE_DEFAULT_CHUNK + 3))
        self._chunk = max(BLE_DEFAULT_CHUNK, mtu - 3)

    @classmethod
    async def connect(cls, address: str, *, timeout: float = 10.0) -> Self:
        """Connect to the meter at ``address`` (a MAC address, or a CoreBluetooth UUID on macOS)."""
        client = _bleak().BleakClient(address, timeout=timeout)
        await client.connect()
        transport = cls(client, timeout=timeout)
        await client.start_notify(METER_LINK_TX_UUID, transport._notified)
        return transport

    @staticmethod
    async def discover(timeout: float = 5.0) -> list[Any]:
        """Nearby devices advertising the meter-link service."""
        found: list[Any] = await _bleak().BleakScanner.discover(
            timeout=timeout, service_uuids=[METER_LINK_SERVICE_UUID]
        )
        return found

    def _notified(self, _characteristic: Any, data: bytearray) -> None:
        try:
            for frame in self._reassembler.feed(bytes(data)):
                self._frames.put_nowait(frame)
        except FrameError as exc:
            self._frames.put_nowait(exc)

    async def exchange(self, frame: bytes) -> bytes:
        async with self._lock:
            self._reassembler.reset()
            while not self._frames.empty():
                self._frames.get_nowait()  # a late answer to an earlier, timed-out request
            for chunk in fragment(frame, self._chunk):
                await self._client.write_gatt_char(METER_LINK_RX_UUID, chunk, response=True)
            try:
                async with asyncio.timeout(self._timeout):
                    reply = await self._frames.get()
            except TimeoutError:
                self._reassembler.reset()
                raise
        if isinstance(reply, FrameError):
            raise reply
        return reply

    async def close(self) -> None:
        await self._client.disconnect()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
