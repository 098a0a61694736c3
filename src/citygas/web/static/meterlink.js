/**
 * citygas meter-link v1 — the browser codec and transports (docs/meter-link.md is the spec).
 *
 * Hand-written, no dependencies, no build step: `import { MeterLinkClient, WebSocketTransport }
 * from "/static/meterlink.js"`. The same golden frames check this module and the Python codec.
 *
 * The browser holds no meter keys, so it never verifies a reading: every reading comes back with
 * its exact frame (`frame`, and `frameBase64`) to upload to the platform, which verifies it.
 * Messages are plain objects in the same JSON form the Python codec's `message_to_json` produces:
 * `{type: "status", status: {credit: 123456, valve: "open", alarms: [], at: "2026-05-01T10:30:00Z", ...}}`.
 *
 * @module meterlink
 */

export const VERSION = 1;
export const HEADER_SIZE = 6;
export const CRC_SIZE = 2;
export const MAC_SIZE = 16;
export const MAX_PAYLOAD = 4096;
/** ATT_MTU 23 minus the 3-byte ATT header: the chunk every BLE link carries. */
export const BLE_CHUNK = 20;
export const SERVICE_UUID = "730e5691-cfad-47c5-9b6e-55d5b6cb92d1";
/** Phone → meter: write with response. */
export const RX_UUID = "bd1393c7-59f0-4ca7-9b45-58eefb6d3494";
/** Meter → phone: notify. */
export const TX_UUID = "a8105855-c8e0-42c8-931d-5917a6b980ee";

/** Byte 1 of a frame, by message name (the `type` of a message object). */
export const MESSAGE_TYPES = Object.freeze({
  read_identity: 0x01, read_status: 0x02, read_registers: 0x03, read_snapshots: 0x04,
  read_events: 0x05, read_parameters: 0x06, enter_token: 0x10, press_button: 0x11,
  set_parameters: 0x20, set_clock: 0x21,
  identity: 0x81, status: 0x82, registers: 0x83, snapshots: 0x84, events: 0x85, parameters: 0x86,
  token_result: 0x90, button_pressed: 0x91, parameters_set: 0xa0, clock_set: 0xa1, error: 0xff,
});
const TYPE_NAMES = invert(MESSAGE_TYPES);
const SIGNED = new Set(["status", "registers", "snapshots", "events", "parameters"]);

export const ERROR_CODES = Object.freeze({
  bad_crc: 0x01, bad_length: 0x02, unsupported_version: 0x03, unknown_type: 0x04, bad_payload: 0x05,
  bad_signature: 0x10, replayed_counter: 0x11, parameters_rejected: 0x12, not_supported: 0x20,
});
const MODES = ["currency", "volume"];
const VALVES = ["open", "closed", "armed"];
const SNAPSHOT_KINDS = ["monthly", "daily"];
/** Alarm name by bit of the u16 alarm mask. */
const ALARMS = [
  "low_credit", "credit_exhausted", "emergency_credit_in_use", "magnet_tamper", "case_open",
  "low_battery", "valve_fault", "reverse_flow", "flow_above_qmax", "keypad_locked",
];
const EVENT_CODES = Object.freeze({
  token_accepted: 0x01, token_rejected: 0x02, valve_opened: 0x10, valve_closed: 0x11, valve_armed: 0x12,
  emergency_credit_taken: 0x20, emergency_credit_repaid: 0x21, low_credit: 0x22, magnet_tamper: 0x30,
  case_open: 0x31, tamper_cleared: 0x32, low_battery: 0x33, valve_fault: 0x34, reverse_flow: 0x35,
  flow_above_qmax: 0x36, key_changed: 0x40, tariff_changed: 0x41, parameters_changed: 0x42, clock_set: 0x43,
});
/** STS acceptance outcomes (citygas.sts.AcceptOutcome values); codes below 0x10 are acceptances. */
export const TOKEN_OUTCOMES = Object.freeze({
  credit_added: 0x00, management_applied: 0x01, key_change_section_stored: 0x02, key_changed: 0x03,
  test_started: 0x04, locked_out: 0x10, format_error: 0x11, crc_error: 0x12, class_error: 0x13,
  manufacturer_error: 0x14, key_type_error: 0x15, key_expired_error: 0x16, old_error: 0x17,
  used_error: 0x18, range_error: 0x19, overflow_error: 0x1a,
});

function invert(table) {
  const out = {};
  for (const [name, code] of Object.entries(table)) out[code] = name;
  return out;
}

/**
 * Every failure of this module. `kind` is one of "crc", "length", "version", "type", "payload"
 * (the frame does not decode), "refused" (the meter answered with an error frame; `code` names it),
 * "sequence", "unexpected", "timeout", "transport".
 */
export class MeterLinkError extends Error {
  /** @param {string} kind @param {string} message @param {string} [code] */
  constructor(kind, message, code) {
    super(message);
    this.name = "MeterLinkError";
    this.kind = kind;
    this.code = code;
  }
}

/**
 * CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR); check value 0x29B1.
 * @param {Uint8Array} bytes
 * @returns {number}
 */
export function crc16CcittFalse(bytes) {
  let crc = 0xffff;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/**
 * Wrap a payload in a frame: version, type, seq (u16), length (u16), payload, CRC (u16), big-endian.
 * @param {number} type @param {number} seq @param {Uint8Array} payload
 * @returns {Uint8Array}
 */
export function encodeFrame(type, seq, payload, version = VERSION) {
  if (payload.length > MAX_PAYLOAD) throw new MeterLinkError("length", `payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const frame = new Uint8Array(HEADER_SIZE + payload.length + CRC_SIZE);
  const view = new DataView(frame.buffer);
  view.setUint8(0, version);
  view.setUint8(1, type);
  view.setUint16(2, seq & 0xffff);
  view.setUint16(4, payload.length);
  frame.set(payload, HEADER_SIZE);
  view.setUint16(HEADER_SIZE + payload.length, crc16CcittFalse(frame.subarray(0, HEADER_SIZE + payload.length)));
  return frame;
}

/**
 * Check version, length and CRC (in that order) and split a frame.
 * @param {Uint8Array} bytes
 * @returns {{version: number, type: number, seq: number, payload: Uint8Array}}
 */
export function decodeFrame(bytes) {
  if (bytes.length > 0 && bytes[0] !== VERSION) throw new MeterLinkError("version", `meter-link version ${bytes[0]} is not supported`);
  if (bytes.length < HEADER_SIZE + CRC_SIZE) throw new MeterLinkError("length", `a frame has at least 8 bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint16(4);
  if (length > MAX_PAYLOAD || bytes.length !== HEADER_SIZE + length + CRC_SIZE) {
    throw new MeterLinkError("length", `length field ${length} does not match a frame of ${bytes.length} bytes`);
  }
  const expected = crc16CcittFalse(bytes.subarray(0, HEADER_SIZE + length));
  if (view.getUint16(HEADER_SIZE + length) !== expected) throw new MeterLinkError("crc", "frame CRC does not match");
  return { version: bytes[0], type: bytes[1], seq: view.getUint16(2), payload: bytes.slice(HEADER_SIZE, HEADER_SIZE + length) };
}

// --- primitive writer and reader ---------------------------------------------------------------

class Writer {
  constructor() { this.bytes = []; }
  uint(value, size, what) {
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** (8 * size)) {
      throw new MeterLinkError("payload", `${what} = ${value} does not fit an unsigned ${8 * size}-bit field`);
    }
    for (let i = size - 1; i >= 0; i--) this.bytes.push(Math.floor(value / 2 ** (8 * i)) & 0xff);
  }
  u8(v, what) { this.uint(v, 1, what); }
  u16(v, what) { this.uint(v, 2, what); }
  u32(v, what) { this.uint(v, 4, what); }
  raw(bytes) { for (const b of bytes) this.bytes.push(b); }
  time(iso, what) { this.u32(Math.floor(Date.parse(iso) / 1000), what); }
  day(iso, what) { this.u16(Math.round(Date.parse(`${iso}T00:00:00Z`) / 86_400_000), what); }
  done() { return Uint8Array.from(this.bytes); }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

class Reader {
  constructor(bytes, what) { this.bytes = bytes; this.pos = 0; this.what = what; this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength); }
  need(n) {
    if (this.pos + n > this.bytes.length) throw new MeterLinkError("payload", `${this.what} payload ends early`);
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u8() { return this.view.getUint8(this.need(1)); }
  u16() { return this.view.getUint16(this.need(2)); }
  u32() { return this.view.getUint32(this.need(4)); }
  u64() {
    const value = this.view.getBigUint64(this.need(8));
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new MeterLinkError("payload", `${this.what}: a register beyond 2^53 cannot be shown`);
    return Number(value);
  }
  take(n) { const at = this.need(n); return this.bytes.slice(at, at + n); }
  bool() {
    const v = this.u8();
    if (v > 1) throw new MeterLinkError("payload", `${this.what}: a boolean byte is 0 or 1, got ${v}`);
    return v === 1;
  }
  text() {
    const raw = this.take(this.u8());
    try { return utf8.decode(raw); } catch { throw new MeterLinkError("payload", `${this.what}: a string is not valid UTF-8`); }
  }
  time() { return new Date(this.u32() * 1000).toISOString().replace(".000Z", "Z"); }
  day() { return new Date(this.u16() * 86_400_000).toISOString().slice(0, 10); }
  code(names, what) {
    const v = this.u8();
    const name = Array.isArray(names) ? names[v] : names[v];
    if (name === undefined) throw new MeterLinkError("payload", `${this.what}: unknown ${what} code 0x${v.toString(16).padStart(2, "0")}`);
    return name;
  }
  finish() {
    if (this.pos !== this.bytes.length) throw new MeterLinkError("payload", `${this.what} payload has ${this.bytes.length - this.pos} unexpected trailing bytes`);
  }
}

const EVENT_NAMES = invert(EVENT_CODES);
const OUTCOME_NAMES = invert(TOKEN_OUTCOMES);
const ERROR_NAMES = invert(ERROR_CODES);

function writeParameters(w, p) {
  w.u32(p.low_credit_threshold, "low_credit_threshold");
  w.u32(p.emergency_credit, "emergency_credit");
  if (p.friendly_hours == null) w.raw([0, 0, 0]);
  else { w.u8(1); w.u8(p.friendly_hours[0], "friendly start"); w.u8(p.friendly_hours[1], "friendly end"); }
  const holidays = p.friendly_holidays ?? [];
  w.u8(holidays.length, "number of friendly_holidays");
  for (const d of holidays) w.day(d, "friendly holiday");
}

function readParameters(r) {
  const low_credit_threshold = r.u32();
  const emergency_credit = r.u32();
  const present = r.bool();
  const start = r.u8();
  const end = r.u8();
  if (present && (start > 23 || end > 23)) throw new MeterLinkError("payload", "friendly hours are not hours 0..23");
  if (!present && (start || end)) throw new MeterLinkError("payload", "friendly hours absent but hour bytes are not zero");
  const count = r.u8();
  const friendly_holidays = [];
  for (let i = 0; i < count; i++) friendly_holidays.push(r.day());
  return { low_credit_threshold, emergency_credit, friendly_hours: present ? [start, end] : null, friendly_holidays };
}

// --- messages ----------------------------------------------------------------------------------

/**
 * The payload bytes of a request object. `set_parameters`/`set_clock` take either the platform's
 * authorised payload as `payload` (Uint8Array) or the fields with `mac` in hex.
 * @param {object} message
 * @returns {Uint8Array}
 */
export function encodeRequestPayload(message) {
  const w = new Writer();
  switch (message.type) {
    case "read_identity": case "read_status": case "read_registers": case "read_parameters": case "press_button":
      break;
    case "read_snapshots":
      w.u8(SNAPSHOT_KINDS.indexOf(message.kind), "kind");
      w.u16(message.offset ?? 0, "offset");
      w.u8(message.count ?? 32, "count");
      break;
    case "read_events":
      w.u32(message.after_seq ?? 0, "after_seq");
      w.u8(message.limit ?? 32, "limit");
      break;
    case "enter_token":
      if (!/^[0-9]{20}$/.test(message.token)) throw new MeterLinkError("payload", "a token is exactly 20 digits");
      w.raw(new TextEncoder().encode(message.token));
      break;
    case "set_parameters": case "set_clock":
      if (message.payload) return Uint8Array.from(message.payload);
      w.u32(message.counter, "counter");
      if (message.type === "set_parameters") writeParameters(w, message.parameters);
      else w.time(message.at, "at");
      w.raw(fromHex(message.mac));
      break;
    default:
      throw new MeterLinkError("type", `not a request: ${message.type}`);
  }
  return w.done();
}

/**
 * A request frame.
 * @param {object} message e.g. `{type: "read_events", after_seq: 40, limit: 3}`
 * @param {number} seq 0..65535
 * @returns {Uint8Array}
 */
export function encodeRequest(message, seq) {
  return encodeFrame(MESSAGE_TYPES[message.type], seq, encodeRequestPayload(message));
}

function decodePayload(name, payload) {
  const r = new Reader(payload, name.toUpperCase());
  let m;
  switch (name) {
    case "read_identity": case "read_status": case "read_registers": case "read_parameters": case "press_button":
      m = { type: name }; break;
    case "read_snapshots":
      m = { type: name, kind: r.code(SNAPSHOT_KINDS, "snapshot kind"), offset: r.u16(), count: r.u8() }; break;
    case "read_events":
      m = { type: name, after_seq: r.u32(), limit: r.u8() }; break;
    case "enter_token": {
      const raw = r.take(20);
      if (!raw.every((b) => b >= 0x30 && b <= 0x39)) throw new MeterLinkError("payload", "a token is 20 ASCII digits");
      m = { type: name, token: new TextDecoder().decode(raw) }; break;
    }
    case "set_parameters":
      m = { type: name, counter: r.u32(), parameters: readParameters(r), mac: toHex(r.take(MAC_SIZE)) }; break;
    case "set_clock":
      m = { type: name, counter: r.u32(), at: r.time(), mac: toHex(r.take(MAC_SIZE)) }; break;
    case "identity":
      m = { type: name, identity: {
        serial: r.text(), sts_meter_number: r.text(), model: r.text(), manufacturer_code: r.u16(),
        firmware: r.text(), mode: r.code(MODES, "mode"), sgc: r.text(), krn: r.u8(), ti: r.u8(), base_date: r.u16(),
      } }; break;
    case "status": {
      const at = r.time();
      const mode = r.code(MODES, "mode");
      const credit = r.u32();
      const flags = r.u8();
      if (flags & ~1) throw new MeterLinkError("payload", "unknown status flag bits");
      const emergency_credit_in_use = r.u32();
      const friendly_debt = r.u32();
      const valve = r.code(VALVES, "valve");
      const mask = r.u16();
      if (mask >> ALARMS.length) throw new MeterLinkError("payload", "unknown alarm bits");
      const alarms = ALARMS.filter((_, bit) => mask & (1 << bit)).sort();
      m = { type: name, status: {
        at, mode, credit, emergency_credit_available: (flags & 1) === 1, emergency_credit_in_use, valve, alarms,
        tariff_paise_per_scm: r.u32(), friendly_debt,
      } }; break;
    }
    case "registers":
      m = { type: name, at: r.time(), registers: { cumulative_litres: r.u64(), cumulative_credit_loaded: r.u64(), tokens_accepted: r.u32() } }; break;
    case "snapshots": {
      m = { type: name, at: r.time(), kind: r.code(SNAPSHOT_KINDS, "snapshot kind"), total: r.u16(), offset: r.u16(), snapshots: [] };
      const n = r.u8();
      for (let i = 0; i < n; i++) m.snapshots.push({ period_end: r.day(), cumulative_litres: r.u64(), credit: r.u32() });
      break;
    }
    case "events": {
      m = { type: name, at: r.time(), more: r.bool(), events: [] };
      const n = r.u8();
      for (let i = 0; i < n; i++) m.events.push({ seq: r.u32(), at: r.time(), code: r.code(EVENT_NAMES, "event"), detail: r.text() });
      break;
    }
    case "parameters":
      m = { type: name, at: r.time(), counter: r.u32(), parameters: readParameters(r) }; break;
    case "token_result":
      m = { type: name, outcome: r.code(OUTCOME_NAMES, "token outcome") }; break;
    case "button_pressed":
      m = { type: name, valve: r.code(VALVES, "valve") }; break;
    case "parameters_set": case "clock_set":
      m = { type: name, counter: r.u32() }; break;
    case "error":
      m = { type: name, code: r.code(ERROR_NAMES, "error"), detail: r.text() }; break;
    default:
      throw new MeterLinkError("type", `no decoder for ${name}`);
  }
  r.finish();
  return m;
}

function messageName(type, request) {
  const name = TYPE_NAMES[type];
  if (name === undefined) throw new MeterLinkError("type", `unknown meter-link message type 0x${type.toString(16).padStart(2, "0")}`);
  if ((type < 0x80) !== request) throw new MeterLinkError("type", `message type 0x${type.toString(16)} is not a ${request ? "request" : "response"}`);
  return name;
}

/**
 * Decode a request frame (what a meter receives).
 * @param {Uint8Array} bytes
 * @returns {{seq: number, message: object}}
 */
export function decodeRequest(bytes) {
  const frame = decodeFrame(bytes);
  return { seq: frame.seq, message: decodePayload(messageName(frame.type, true), frame.payload) };
}

/**
 * Decode a response frame. A signed reading's MAC is split off (hex) but NOT verified: only the
 * platform holds the key. Upload the frame to have it verified.
 * @param {Uint8Array} bytes
 * @returns {{seq: number, message: object, mac: string|null, signed: boolean}}
 */
export function decodeResponse(bytes) {
  const frame = decodeFrame(bytes);
  const name = messageName(frame.type, false);
  let payload = frame.payload;
  let mac = null;
  if (SIGNED.has(name)) {
    if (payload.length < MAC_SIZE) throw new MeterLinkError("payload", `a signed ${name} payload ends before its MAC`);
    mac = toHex(payload.subarray(payload.length - MAC_SIZE));
    payload = payload.subarray(0, payload.length - MAC_SIZE);
  }
  return { seq: frame.seq, message: decodePayload(name, payload), mac, signed: mac !== null };
}

// --- BLE fragmentation -------------------------------------------------------------------------

/**
 * Cut a frame into chunks for GATT writes (chunk size = ATT_MTU − 3; 20 when unknown).
 * @param {Uint8Array} frame @param {number} [size]
 * @returns {Uint8Array[]}
 */
export function fragment(frame, size = BLE_CHUNK) {
  const chunks = [];
  for (let i = 0; i < frame.length; i += size) chunks.push(frame.slice(i, i + size));
  return chunks;
}

/** Rebuilds whole frames from ordered chunks, using the header's length field. */
export class Reassembler {
  constructor() { this.buffer = new Uint8Array(0); }
  reset() { this.buffer = new Uint8Array(0); }
  /**
   * Add a chunk; return the frames it completes. A header that cannot start a frame drops the
   * buffer and throws, so the next chunk starts afresh.
   * @param {Uint8Array} chunk
   * @returns {Uint8Array[]}
   */
  feed(chunk) {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    this.buffer = joined;
    const frames = [];
    while (this.buffer.length >= HEADER_SIZE) {
      const length = (this.buffer[4] << 8) | this.buffer[5];
      if (this.buffer[0] !== VERSION || length > MAX_PAYLOAD) {
        this.reset();
        throw new MeterLinkError(length > MAX_PAYLOAD ? "length" : "version", "stream out of step: buffer dropped");
      }
      const total = HEADER_SIZE + length + CRC_SIZE;
      if (this.buffer.length < total) break;
      frames.push(this.buffer.slice(0, total));
      this.buffer = this.buffer.slice(total);
    }
    return frames;
  }
}

// --- helpers -----------------------------------------------------------------------------------

/** @param {Uint8Array} bytes @returns {string} lower-case hex */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {string} hex @returns {Uint8Array} */
export function fromHex(hex) {
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new MeterLinkError("payload", "not hex");
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** @param {Uint8Array} bytes @returns {string} standard base64, for uploading frames */
export function toBase64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** @param {string} text base64 @returns {Uint8Array} */
export function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

// --- client and transports ---------------------------------------------------------------------

/**
 * Typed requests to one meter over a transport (`{exchange(frame: Uint8Array): Promise<Uint8Array>}`).
 * One request at a time: calls queue behind each other.
 */
export class MeterLinkClient {
  /** @param {{exchange: (frame: Uint8Array) => Promise<Uint8Array>}} transport */
  constructor(transport, firstSeq = 1) {
    this.transport = transport;
    this.seq = firstSeq & 0xffff;
    this.queue = Promise.resolve();
  }

  /**
   * Send any request object; resolve to `{message, frame, frameBase64, mac}`. Rejects with a
   * MeterLinkError of kind "refused" (the meter's error frame; `code` e.g. "replayed_counter"),
   * "sequence" or "unexpected".
   * @param {object} message
   */
  request(message) {
    const run = async () => {
      const seq = this.seq;
      this.seq = (this.seq + 1) & 0xffff;
      const frame = await this.transport.exchange(encodeRequest(message, seq));
      const decoded = decodeResponse(frame);
      if (decoded.seq !== seq) throw new MeterLinkError("sequence", `sent request #${seq}, got the answer to #${decoded.seq}`);
      if (decoded.message.type === "error") {
        throw new MeterLinkError("refused", `meter refused the request: ${decoded.message.code} (${decoded.message.detail})`, decoded.message.code);
      }
      if (MESSAGE_TYPES[decoded.message.type] !== (MESSAGE_TYPES[message.type] | 0x80)) {
        throw new MeterLinkError("unexpected", `${message.type} was answered with ${decoded.message.type}`);
      }
      return { message: decoded.message, frame, frameBase64: toBase64(frame), mac: decoded.mac };
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** @returns {Promise<object>} the identity object */
  async readIdentity() { return (await this.request({ type: "read_identity" })).message.identity; }
  /** Signed: upload `frameBase64`. */
  readStatus() { return this.request({ type: "read_status" }); }
  /** Signed. */
  readRegisters() { return this.request({ type: "read_registers" }); }
  /** Signed. */
  readParameters() { return this.request({ type: "read_parameters" }); }
  /** Signed. @param {"monthly"|"daily"} kind */
  readSnapshots(kind, offset = 0, count = 32) { return this.request({ type: "read_snapshots", kind, offset, count }); }
  /** Signed. */
  readEvents(afterSeq = 0, limit = 32) { return this.request({ type: "read_events", after_seq: afterSeq, limit }); }

  /** Every page of snapshots of one kind. @param {"monthly"|"daily"} kind */
  async readAllSnapshots(kind) {
    const pages = [await this.readSnapshots(kind)];
    for (;;) {
      const last = pages[pages.length - 1].message;
      const next = last.offset + last.snapshots.length;
      if (last.snapshots.length === 0 || next >= last.total) return pages;
      pages.push(await this.readSnapshots(kind, next));
    }
  }

  /** Every event after `afterSeq`, page by page. */
  async readEventsSince(afterSeq = 0) {
    const pages = [await this.readEvents(afterSeq)];
    for (;;) {
      const last = pages[pages.length - 1].message;
      if (!last.more || last.events.length === 0) return pages;
      pages.push(await this.readEvents(last.events[last.events.length - 1].seq));
    }
  }

  /** @param {string} token 20 digits @returns {Promise<string>} the STS outcome, e.g. "credit_added" */
  async enterToken(token) { return (await this.request({ type: "enter_token", token })).message.outcome; }
  /** The re-arm press (simulated meters only). @returns {Promise<string>} the valve after it */
  async pressButton() { return (await this.request({ type: "press_button" })).message.valve; }

  /**
   * Deliver a setting the platform authorised: `type` "set_parameters" or "set_clock", `payloadBase64`
   * as the platform gave it. @returns {Promise<number>} the counter the meter accepted
   */
  async sendAuthorised(type, payloadBase64) {
    return (await this.request({ type, payload: fromBase64(payloadBase64) })).message.counter;
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new MeterLinkError("timeout", `${what}: no answer in ${ms} ms`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A simulated meter at `ws(s)://…/sim/meters/{serial}/link`: one binary message per frame. */
export class WebSocketTransport {
  /** @param {WebSocket} socket */
  constructor(socket, timeoutMs = 10_000) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
    this.waiting = null;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => {
      const waiting = this.waiting;
      this.waiting = null;
      if (waiting && event.data instanceof ArrayBuffer) waiting.resolve(new Uint8Array(event.data));
      else if (waiting) waiting.reject(new MeterLinkError("transport", "the meter link sent a text message"));
    });
    socket.addEventListener("close", () => {
      if (this.waiting) this.waiting.reject(new MeterLinkError("transport", "the meter link closed"));
      this.waiting = null;
    });
  }

  /** @param {string} url @returns {Promise<WebSocketTransport>} */
  static connect(url, timeoutMs = 10_000) {
    const socket = new WebSocket(url);
    const opened = new Promise((resolve, reject) => {
      socket.addEventListener("open", () => resolve(new WebSocketTransport(socket, timeoutMs)), { once: true });
      socket.addEventListener("error", () => reject(new MeterLinkError("transport", `cannot open ${url}`)), { once: true });
    });
    return withTimeout(opened, timeoutMs, "connect");
  }

  /** @param {Uint8Array} frame @returns {Promise<Uint8Array>} */
  exchange(frame) {
    const answer = new Promise((resolve, reject) => { this.waiting = { resolve, reject }; });
    this.socket.send(frame);
    return withTimeout(answer, this.timeoutMs, "meter link").finally(() => { this.waiting = null; });
  }

  close() { this.socket.close(); }
}

/**
 * A real meter over Web Bluetooth: writes request chunks to RX, reassembles TX notifications.
 * Web Bluetooth does not expose the negotiated MTU, so chunks are 20 bytes unless told otherwise.
 */
export class BluetoothTransport {
  constructor(device, rx, tx, { chunkSize = BLE_CHUNK, timeoutMs = 10_000 } = {}) {
    this.device = device;
    this.rx = rx;
    this.tx = tx;
    this.chunkSize = chunkSize;
    this.timeoutMs = timeoutMs;
    this.reassembler = new Reassembler();
    this.waiting = null;
    this.queue = Promise.resolve();
    tx.addEventListener("characteristicvaluechanged", (event) => {
      const value = event.target.value;
      let frames;
      try {
        frames = this.reassembler.feed(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      } catch (error) {
        if (this.waiting) this.waiting.reject(error);
        this.waiting = null;
        return;
      }
      for (const frame of frames) {
        if (this.waiting) this.waiting.resolve(frame);
        this.waiting = null;
      }
    });
    // A meter that walks out of range fails the request now, not after the timeout (as a closed WebSocket does).
    device.addEventListener?.("gattserverdisconnected", () => {
      this.reassembler.reset();
      if (this.waiting) this.waiting.reject(new MeterLinkError("transport", "the meter disconnected"));
      this.waiting = null;
    });
  }

  /**
   * Ask the user to pick a meter (must run from a user gesture), connect and subscribe.
   * @param {{bluetooth?: Bluetooth, chunkSize?: number, timeoutMs?: number}} [options]
   * @returns {Promise<BluetoothTransport>}
   */
  static async request(options = {}) {
    const bluetooth = options.bluetooth ?? globalThis.navigator?.bluetooth;
    if (!bluetooth) throw new MeterLinkError("transport", "this browser has no Web Bluetooth");
    const device = await bluetooth.requestDevice({ filters: [{ services: [SERVICE_UUID] }] });
    const server = await device.gatt.connect();
    const service = await server.getPrimaryService(SERVICE_UUID);
    const rx = await service.getCharacteristic(RX_UUID);
    const tx = await service.getCharacteristic(TX_UUID);
    const transport = new BluetoothTransport(device, rx, tx, options);
    await tx.startNotifications();
    return transport;
  }

  /** @param {Uint8Array} frame @returns {Promise<Uint8Array>} */
  exchange(frame) {
    const run = async () => {
      this.reassembler.reset();
      const answer = new Promise((resolve, reject) => { this.waiting = { resolve, reject }; });
      answer.catch(() => undefined); // a disconnection can reject it while the writes are still going
      try {
        for (const chunk of fragment(frame, this.chunkSize)) await this.rx.writeValueWithResponse(chunk);
      } catch (error) {
        this.waiting = null;
        throw error instanceof MeterLinkError ? error : new MeterLinkError("transport", `cannot write to the meter: ${error}`);
      }
      return withTimeout(answer, this.timeoutMs, "meter link").finally(() => { this.waiting = null; });
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  close() { if (this.device.gatt.connected) this.device.gatt.disconnect(); }
}
