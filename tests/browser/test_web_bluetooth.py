"""The Web Bluetooth path of meterlink.js in real Chromium, against an emulated BLE meter.

Chromium's CDP ``BluetoothEmulation`` domain stands in for the radio: a preconnected peripheral with
the meter-link service, RX (write) and TX (notify) characteristics. The page runs the real
``BluetoothTransport.request()`` from a click, the ``DeviceAccess`` domain picks the meter in the
chooser, and this file plays the meter: it reassembles the 20-byte chunks the page writes to RX,
answers each frame with a ``MeterLinkEndpoint`` over a pure ``SimulatedMeter``, and sends the answer
back in 20-byte TX chunks.

What Chromium 156 cannot do: send a notification. ``BluetoothEmulation`` has no command that makes
an emulated characteristic notify (only responses to reads, writes and (un)subscribes). So TX also
gets the ``read`` property, and an init script keeps one ``readValue()`` outstanding on every
characteristic the page subscribes to; this file answers it with the next TX chunk. Chromium fires
``characteristicvaluechanged`` for a completed read exactly as for a notification, so the transport's
own listener and reassembly are what run. Everything else is the real Web Bluetooth stack. Nor does
Chromium 156 deliver an emulated disconnection while a characteristic operation is outstanding, so
the meter ends that read before it hangs up.

Web Bluetooth is off by default in Chromium on Linux (``navigator.bluetooth`` is undefined), so this
module launches its own Chromium with ``--enable-features=WebBluetooth``; ``BluetoothEmulation`` is
served on the browser target, ``DeviceAccess`` on the page target.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, CDPSession, Page, Playwright

from citygas.meters.link import (
    MeterLinkEndpoint,
    Reassembler,
    StatusResponse,
    derive_meter_parameter_key,
    derive_meter_reading_key,
    fragment,
    verify_reading,
)
from citygas.meters.link.ble import METER_LINK_RX_UUID, METER_LINK_SERVICE_UUID, METER_LINK_TX_UUID
from citygas.meters.model import SimulatedMeter
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS
from tests.meters.test_model import Vendor, make_meter

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[2] / "src" / "citygas" / "web" / "static"
ORIGIN = "http://127.0.0.1:9"  # never contacted: every request is routed; loopback is a secure context
ROOT = bytes(range(64, 96))
ADDRESS = "0C:17:6A:50:00:01"
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"  # client characteristic configuration
CHUNK = 20
SUCCESS = 0  # HCI and ATT "success"
UNLIKELY_ERROR = 0x0E  # ATT "unlikely error"

PAGE = """<!doctype html><title>meter</title>
<button id="connect">Connect to meter</button>
<script type="module">
import { BluetoothTransport, MeterLinkClient } from "/static/meterlink.js";
document.getElementById("connect").addEventListener("click", () => {
  window.meter = BluetoothTransport.request()
    .then((transport) => ({ transport, client: new MeterLinkClient(transport) }));
});
</script>"""

# Stands in for the notifications BluetoothEmulation cannot send (see the module docstring).
NOTIFY_BY_READ = """
if (globalThis.BluetoothRemoteGATTCharacteristic) {
  const start = BluetoothRemoteGATTCharacteristic.prototype.startNotifications;
  BluetoothRemoteGATTCharacteristic.prototype.startNotifications = async function () {
    const result = await start.call(this);
    (async () => {
      while (this.service.device.gatt.connected) {
        try { await this.readValue(); } catch { return; }
      }
    })();
    return result;
  };
}
"""


class EmulatedMeter:
    """The meter's side of the emulated GATT link, answering Chromium's emulation events."""

    def __init__(self, meter: SimulatedMeter, browser_cdp: CDPSession, page_cdp: CDPSession) -> None:
        serial = meter.identity().serial
        self.meter = meter
        self.reading_key = derive_meter_reading_key(ROOT, serial)
        self.endpoint = MeterLinkEndpoint(meter, self.reading_key, derive_meter_parameter_key(ROOT, serial))
        self.cdp = browser_cdp
        self.page_cdp = page_cdp
        self.inbound = Reassembler()
        self.outbound: deque[bytes] = deque()
        self.read_waiting = False
        self.prompts: set[str] = set()
        self.operations: list[str] = []  # every GATT and characteristic operation, in order
        self.rx_writes: list[int] = []  # sizes of the chunks the page wrote to RX for the frame in hand
        self.writes: list[list[int]] = []  # chunk sizes of each whole request frame the page wrote
        self.tx_chunks: list[int] = []  # sizes of the chunks sent back on TX
        self.requests: list[bytes] = []
        self.responses: list[bytes] = []
        self.errors: list[str] = []
        self.hang_up = False  # when set, the meter drops the link instead of answering
        self.rx_id = ""
        self.tx_id = ""

    def install(self) -> None:
        cdp = self.cdp
        cdp.on("BluetoothEmulation.gattOperationReceived", self._guarded(self._gatt))
        cdp.on("BluetoothEmulation.characteristicOperationReceived", self._guarded(self._characteristic))
        cdp.on("BluetoothEmulation.descriptorOperationReceived", self._guarded(self._descriptor))
        self.page_cdp.on("DeviceAccess.deviceRequestPrompted", self._guarded(self._prompted))
        cdp.send("BluetoothEmulation.enable", {"state": "powered-on", "leSupported": True})
        self.page_cdp.send("DeviceAccess.enable")
        cdp.send(
            "BluetoothEmulation.simulatePreconnectedPeripheral",
            {
                "address": ADDRESS,
                "name": "citygas meter",
                "manufacturerData": [],
                "knownServiceUuids": [METER_LINK_SERVICE_UUID],
            },
        )
        service = cdp.send(
            "BluetoothEmulation.addService", {"address": ADDRESS, "serviceUuid": METER_LINK_SERVICE_UUID}
        )["serviceId"]
        self.rx_id = cdp.send(
            "BluetoothEmulation.addCharacteristic",
            {"serviceId": service, "characteristicUuid": METER_LINK_RX_UUID, "properties": {"write": True}},
        )["characteristicId"]
        self.tx_id = cdp.send(
            "BluetoothEmulation.addCharacteristic",
            {
                "serviceId": service,
                "characteristicUuid": METER_LINK_TX_UUID,
                "properties": {"notify": True, "read": True},  # read: the notification stand-in
            },
        )["characteristicId"]
        # Without a CCCD, startNotifications() fails with "NotSupportedError: GATT Error: Not supported."
        cdp.send(
            "BluetoothEmulation.addDescriptor", {"characteristicId": self.tx_id, "descriptorUuid": CCCD_UUID}
        )

    def _guarded(self, handler: Any) -> Any:
        def run(event: dict[str, Any]) -> None:
            try:
                handler(event)
            except Exception as exc:  # raising here would stop Playwright's dispatcher
                self.errors.append(f"{type(exc).__name__}: {exc}")

        return run

    def _prompted(self, event: dict[str, Any]) -> None:
        # The chooser prompts again as the device list updates; a second selectPrompt for the same prompt
        # crashes Chromium 156 (CHECK in bluetooth_device_chooser_controller.cc), so choose once.
        if event["id"] in self.prompts or not event["devices"]:
            return
        self.prompts.add(event["id"])
        self.page_cdp.send(
            "DeviceAccess.selectPrompt", {"id": event["id"], "deviceId": event["devices"][0]["id"]}
        )

    def _gatt(self, event: dict[str, Any]) -> None:
        self.operations.append(f"gatt {event['type']}")
        self.cdp.send(
            "BluetoothEmulation.simulateGATTOperationResponse",
            {"address": event["address"], "type": event["type"], "code": SUCCESS},
        )

    def _descriptor(self, event: dict[str, Any]) -> None:
        self.operations.append(f"descriptor {event['type']}")
        self.cdp.send(
            "BluetoothEmulation.simulateDescriptorOperationResponse",
            {"descriptorId": event["descriptorId"], "type": event["type"], "code": SUCCESS},
        )

    def _characteristic(self, event: dict[str, Any]) -> None:
        # Handlers may interleave wherever they wait on cdp.send, so state changes come before any send.
        which = "rx" if event["characteristicId"] == self.rx_id else "tx"
        kind = event["type"]
        if kind != "read":
            self.operations.append(f"{which} {kind}")
        if which == "rx" and kind == "write":
            chunk = base64.b64decode(event["data"])
            self.rx_writes.append(len(chunk))
            frames = self.inbound.feed(chunk)
            for frame in frames:
                self.writes.append(self.rx_writes)
                self.rx_writes = []
                self.requests.append(frame)
                if not self.hang_up:
                    answer = self.endpoint.handle(frame)
                    self.responses.append(answer)
                    self.outbound.extend(fragment(answer, CHUNK))
            pending = self._next_chunk() if self.read_waiting else None
            self._respond(event, SUCCESS)
            if frames and self.hang_up:
                self._hang_up()
            if pending is not None:
                self._send_chunk(pending)
        elif which == "tx" and kind == "read":
            reply = self._next_chunk()
            if reply is None:
                self.read_waiting = True  # answered when the meter has something to say
            else:
                self._send_chunk(reply)
        else:
            self._respond(event, SUCCESS)

    def _hang_up(self) -> None:
        # Chromium 156 does not deliver an emulated disconnection while a characteristic operation is
        # outstanding (the page never sees it), so first end the notification stand-in's read with an error.
        assert self.read_waiting, "the notification stand-in has no read outstanding"
        self.read_waiting = False
        self.operations.append("hang up")
        self.cdp.send(
            "BluetoothEmulation.simulateCharacteristicOperationResponse",
            {"characteristicId": self.tx_id, "type": "read", "code": UNLIKELY_ERROR},
        )
        self.cdp.send("BluetoothEmulation.simulateGATTDisconnection", {"address": ADDRESS})

    def _next_chunk(self) -> bytes | None:
        if not self.outbound:
            return None
        self.read_waiting = False
        chunk = self.outbound.popleft()
        self.tx_chunks.append(len(chunk))
        return chunk

    def _send_chunk(self, chunk: bytes) -> None:
        self.cdp.send(
            "BluetoothEmulation.simulateCharacteristicOperationResponse",
            {
                "characteristicId": self.tx_id,
                "type": "read",
                "code": SUCCESS,
                "data": base64.b64encode(chunk).decode("ascii"),
            },
        )

    def _respond(self, event: dict[str, Any], code: int) -> None:
        self.cdp.send(
            "BluetoothEmulation.simulateCharacteristicOperationResponse",
            {"characteristicId": event["characteristicId"], "type": event["type"], "code": code},
        )


@pytest.fixture(scope="module")
def bluetooth_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium with Web Bluetooth on, from the session's one Playwright (conftest.py)."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, "--enable-features=WebBluetooth"]
    )
    yield browser
    browser.close()


def _connected(bluetooth_browser: Browser, meter: SimulatedMeter) -> Iterator[tuple[Page, EmulatedMeter]]:
    context = bluetooth_browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(NOTIFY_BY_READ)
    page = context.new_page()
    module = (STATIC / "meterlink.js").read_text(encoding="utf-8")
    page.route(
        f"{ORIGIN}/static/meterlink.js",
        lambda route: route.fulfill(body=module, content_type="text/javascript"),
    )
    page.route(f"{ORIGIN}/", lambda route: route.fulfill(body=PAGE, content_type="text/html"))
    page.goto(f"{ORIGIN}/")
    browser_cdp = bluetooth_browser.new_browser_cdp_session()
    emulated = EmulatedMeter(meter, browser_cdp, context.new_cdp_session(page))
    emulated.install()
    page.get_by_role("button", name="Connect to meter").click()  # requestDevice needs a user gesture
    page.evaluate("async () => { await window.meter; }")
    try:
        yield page, emulated
    finally:
        page.evaluate("async () => { (await window.meter).transport.close(); }")
        browser_cdp.send("BluetoothEmulation.disable")
        browser_cdp.detach()
        context.close()


@pytest.fixture
def fresh_meter(bluetooth_browser: Browser) -> Iterator[tuple[Page, EmulatedMeter]]:
    yield from _connected(bluetooth_browser, make_meter())


@pytest.fixture
def meter_with_history(bluetooth_browser: Browser) -> Iterator[tuple[Page, EmulatedMeter]]:
    meter = make_meter()
    meter.advance_clock(meter.now + timedelta(days=40))  # 40 daily snapshots: pages of 32 and 8
    yield from _connected(bluetooth_browser, meter)


def test_the_page_enters_a_token_over_emulated_web_bluetooth_and_sees_the_credit(
    fresh_meter: tuple[Page, EmulatedMeter],
) -> None:
    page, emulated = fresh_meter
    token = Vendor().credit(emulated.meter, 50_000).token
    result = page.evaluate(
        """async (token) => {
            const { transport, client } = await window.meter;
            const identity = await client.readIdentity();
            const before = await client.readStatus();
            const outcome = await client.enterToken(token);
            const again = await client.enterToken(token);
            const after = await client.readStatus();
            return { name: transport.device.name, connected: transport.device.gatt.connected,
                     serial: identity.serial, before: before.message.status, outcome, again,
                     after: after.message.status, upload: after.frameBase64 };
        }""",
        token,
    )
    assert emulated.errors == []
    assert (result["name"], result["connected"]) == ("citygas meter", True)
    assert result["serial"] == emulated.meter.identity().serial
    assert (result["before"]["credit"], result["outcome"], result["again"]) == (
        0,
        "credit_added",
        "used_error",
    )
    assert (result["after"]["credit"], emulated.meter.credit) == (50_000, 50_000)
    assert result["after"]["valve"] == "armed"  # credit is back: the valve waits for the button
    # The platform verifies what the phone uploads: the meter's signature survived the BLE round trip.
    reading = verify_reading(base64.b64decode(result["upload"]), emulated.reading_key)
    assert isinstance(reading, StatusResponse)
    assert reading.status.credit == 50_000
    # The real connect sequence, then only 20-byte-or-less writes with response.
    assert emulated.operations[:3] == ["gatt connection", "gatt discovery", "tx subscribe-to-notifications"]
    assert set(emulated.operations[3:]) == {"rx write"}
    sent = [(frame[1], writes) for frame, writes in zip(emulated.requests, emulated.writes, strict=True)]
    assert sent == [(0x01, [8]), (0x02, [8]), (0x10, [20, 8]), (0x10, [20, 8]), (0x02, [8])]


def test_a_response_of_many_20_byte_chunks_is_reassembled_byte_for_byte(
    meter_with_history: tuple[Page, EmulatedMeter],
) -> None:
    page, emulated = meter_with_history
    result = page.evaluate(
        """async () => {
            const { client } = await window.meter;
            const pages = await client.readAllSnapshots("daily");
            const counts = pages.map((p) => p.message.snapshots.length);
            return { frames: pages.map((p) => p.frameBase64), counts };
        }"""
    )
    assert emulated.errors == []
    frames = [base64.b64decode(f) for f in result["frames"]]
    assert result["counts"] == [32, 8]
    assert frames == emulated.responses  # every byte, as the meter sent it
    expected = [len(chunk) for frame in emulated.responses for chunk in fragment(frame, CHUNK)]
    assert len(emulated.responses[0]) > 20 * CHUNK
    assert emulated.tx_chunks == expected
    for frame in frames:
        verify_reading(frame, emulated.reading_key)


def test_a_meter_that_drops_the_link_fails_the_request_at_once_not_after_the_timeout(
    fresh_meter: tuple[Page, EmulatedMeter],
) -> None:
    page, emulated = fresh_meter
    emulated.hang_up = True
    result = page.evaluate(
        """async () => {
            const { transport, client } = await window.meter;
            const started = performance.now();
            try {
                await client.readStatus();
                return { kind: "answered" };
            } catch (error) {
                return { kind: error.kind ?? String(error), ms: performance.now() - started,
                         connected: transport.device.gatt.connected };
            }
        }"""
    )
    assert emulated.errors == []
    assert emulated.operations[-1] == "hang up"
    assert (result["kind"], result["connected"]) == ("transport", False)
    assert result["ms"] < 2_000  # the transport's own timeout is 10 s
