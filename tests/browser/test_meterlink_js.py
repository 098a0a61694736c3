"""The browser module meterlink.js in real headless Chromium: it decodes and encodes every golden
frame exactly as the Python codec does, and its client drives the Python meter endpoint over a
real WebSocket and over a stand-in Web Bluetooth device (20-byte GATT chunks)."""

from __future__ import annotations

import asyncio
import base64
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page
from websockets.asyncio.server import ServerConnection, serve

from citygas.meters.link import MeterLinkEndpoint, authorise_clock, verify_reading
from citygas.meters.link.messages import encode_payload
from tests.meters.test_link_endpoint import PARAMETER_KEY, READING_KEY, SERIAL, TOKEN_OK, FakeMeter

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[2] / "src" / "citygas" / "web" / "static"
GOLDEN = Path(__file__).resolve().parents[1] / "meters" / "golden_frames.json"
LATER = datetime(2026, 5, 2, 6, 0, tzinfo=UTC)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def static_url() -> Iterator[str]:
    """The static folder served the way the app serves it: meterlink.js as a JavaScript module."""
    handler = functools.partial(_QuietHandler, directory=str(STATIC))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def page(static_url: str, browser: Browser) -> Iterator[Page]:
    # The session's one Playwright and Chromium (tests/browser/conftest.py): a second sync Playwright in
    # the same process is refused.
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{static_url}/")
    yield page
    context.close()


@pytest.fixture
def meter_link() -> Iterator[tuple[str, FakeMeter]]:
    """A fake meter behind its Python endpoint on a local WebSocket, as the simulator serves it."""
    meter = FakeMeter()
    endpoint = MeterLinkEndpoint(meter, READING_KEY, PARAMETER_KEY)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    url: list[str] = []

    async def link(connection: ServerConnection) -> None:
        async for message in connection:
            assert isinstance(message, bytes)
            await connection.send(endpoint.handle(message))

    async def run() -> None:
        async with serve(link, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            url.append(f"ws://127.0.0.1:{port}/sim/meters/{SERIAL}/link")
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield url[0], meter
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def _golden() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return loaded


def test_the_js_crc_has_the_published_check_value(page: Page) -> None:
    crc = page.evaluate(
        """async () => {
            const ml = await import("/meterlink.js");
            return ml.crc16CcittFalse(new TextEncoder().encode("123456789"));
        }"""
    )
    assert crc == 0x29B1


def test_the_js_module_decodes_every_golden_frame_to_its_recorded_meaning(page: Page) -> None:
    golden = _golden()
    decoded = page.evaluate(
        """async (frames) => {
            const ml = await import("/meterlink.js");
            return frames.map((f) => {
                const bytes = ml.fromHex(f.hex);
                const d = f.direction === "request" ? ml.decodeRequest(bytes) : ml.decodeResponse(bytes);
                return { name: f.name, seq: d.seq, message: d.message, mac: d.mac ?? null };
            });
        }""",
        golden["frames"],
    )
    for entry, got in zip(golden["frames"], decoded, strict=True):
        assert (got["seq"], got["message"]) == (entry["seq"], entry["message"]), entry["name"]
        if entry["direction"] == "response":
            assert got["mac"] == entry["mac"], entry["name"]


def test_the_js_module_encodes_every_golden_request_to_the_same_bytes(page: Page) -> None:
    requests = [f for f in _golden()["frames"] if f["direction"] == "request"]
    encoded = page.evaluate(
        """async (frames) => {
            const ml = await import("/meterlink.js");
            return frames.map((f) => ml.toHex(ml.encodeRequest(f.message, f.seq)));
        }""",
        requests,
    )
    assert encoded == [f["hex"] for f in requests]


def test_the_js_module_rejects_every_invalid_golden_frame_with_the_same_kind_of_error(page: Page) -> None:
    invalid = _golden()["invalid"]
    kinds = page.evaluate(
        """async (frames) => {
            const ml = await import("/meterlink.js");
            return frames.map((f) => {
                try {
                    (f.direction === "request" ? ml.decodeRequest : ml.decodeResponse)(ml.fromHex(f.hex));
                    return "accepted";
                } catch (error) {
                    return error instanceof ml.MeterLinkError ? error.kind : String(error);
                }
            });
        }""",
        invalid,
    )
    assert kinds == [f["error"] for f in invalid]


def test_js_fragments_into_20_byte_chunks_that_reassemble(page: Page) -> None:
    events = next(f for f in _golden()["frames"] if f["name"] == "events")
    result = page.evaluate(
        """async (hex) => {
            const ml = await import("/meterlink.js");
            const frame = ml.fromHex(hex);
            const chunks = ml.fragment(frame);
            const r = new ml.Reassembler();
            const frames = chunks.flatMap((c) => r.feed(c));
            return { sizes: chunks.map((c) => c.length), frames: frames.map(ml.toHex) };
        }""",
        events["hex"],
    )
    size = len(events["hex"]) // 2
    assert result["sizes"] == [20] * (size // 20) + ([size % 20] if size % 20 else [])
    assert result["frames"] == [events["hex"]]


def test_the_js_client_enters_a_token_over_websocket_and_its_reading_verifies_in_python(
    page: Page, meter_link: tuple[str, FakeMeter]
) -> None:
    url, meter = meter_link
    # The platform authorises a clock setting and hands the phone the payload as base64.
    clock = authorise_clock(LATER, serial=SERIAL, counter=1, parameter_key=PARAMETER_KEY)
    authorised = base64.b64encode(encode_payload(clock)).decode("ascii")
    result = page.evaluate(
        """async ([url, token, authorised]) => {
            const ml = await import("/meterlink.js");
            const transport = await ml.WebSocketTransport.connect(url);
            const client = new ml.MeterLinkClient(transport);
            const identity = await client.readIdentity();
            const outcome = await client.enterToken(token);
            const again = await client.enterToken(token);
            const valve = await client.pressButton();
            const status = await client.readStatus();
            const accepted = await client.sendAuthorised("set_clock", authorised);
            let refused = null;
            try {
                await client.sendAuthorised("set_clock", authorised);
            } catch (error) {
                refused = error.code;
            }
            transport.close();
            return { serial: identity.serial, outcome, again, valve, credit: status.message.status.credit,
                     upload: status.frameBase64, accepted, refused };
        }""",
        [url, TOKEN_OK, authorised],
    )
    assert result["serial"] == SERIAL
    assert (result["outcome"], result["again"], result["valve"]) == ("credit_added", "used_error", "open")
    assert (result["credit"], meter.credit) == (50_000, 50_000)
    assert (result["accepted"], meter.clock, result["refused"]) == (1, LATER, "replayed_counter")
    reading = verify_reading(base64.b64decode(result["upload"]), READING_KEY)
    assert reading.TYPE.name == "STATUS"


def test_the_js_bluetooth_transport_talks_in_20_byte_chunks(
    page: Page, meter_link: tuple[str, FakeMeter]
) -> None:
    """A stand-in Web Bluetooth meter: it reassembles RX writes, relays each whole frame to the Python
    endpoint over a WebSocket, and notifies the answer back on TX in 20-byte chunks."""
    url, _ = meter_link
    result = page.evaluate(
        """async (url) => {
            const ml = await import("/meterlink.js");
            const socket = await ml.WebSocketTransport.connect(url);
            const written = [];
            const tx = new EventTarget();
            tx.startNotifications = async () => tx;
            const meterSide = new ml.Reassembler();
            const rx = {
                async writeValueWithResponse(chunk) {
                    written.push(chunk.length);
                    for (const frame of meterSide.feed(chunk)) {
                        const answer = await socket.exchange(frame);
                        for (const piece of ml.fragment(answer, 20)) {
                            const event = new Event("characteristicvaluechanged");
                            const value = new DataView(piece.buffer);
                            Object.defineProperty(event, "target", { value: { value } });
                            tx.dispatchEvent(event);
                        }
                    }
                },
            };
            const service = { getCharacteristic: async (uuid) => (uuid === ml.RX_UUID ? rx : tx) };
            const server = {
                async getPrimaryService(uuid) {
                    if (uuid !== ml.SERVICE_UUID) throw new Error(uuid);
                    return service;
                },
            };
            const device = { gatt: { connected: true, connect: async () => server, disconnect() {} } };
            let filters = null;
            const bluetooth = {
                async requestDevice(options) {
                    filters = options.filters;
                    return device;
                },
            };
            const transport = await ml.BluetoothTransport.request({ bluetooth });
            const client = new ml.MeterLinkClient(transport);
            const outcome = await client.enterToken("33333333333333333333");
            const pages = await client.readAllSnapshots("daily");
            socket.close();
            return { filters, written, outcome, pages: pages.map((p) => p.message.snapshots.length) };
        }""",
        url,
    )
    assert result["filters"] == [{"services": ["730e5691-cfad-47c5-9b6e-55d5b6cb92d1"]}]
    assert result["outcome"] == "credit_added"
    assert result["written"][:2] == [20, 8]  # the 28-byte ENTER_TOKEN frame in two GATT writes
    assert result["pages"] == [32, 32, 26]
