/**
 * The customer app's meter screen (/app/meter): "Send to meter" and "Sync meter".
 *
 * - Connects to the household's meter: a WebSocket to a demo (simulated) meter, Web Bluetooth to a real one
 *   (offered only where `navigator.bluetooth` exists; the browser asks the person to pick the meter).
 * - Enters each pending token in order and says what the meter answered. It stops at the first refusal
 *   other than "already used", because every wrong token counts towards the meter's keypad lock-out.
 * - Reads back the meter's signed status, registers, every page of snapshots and the events since the last
 *   one the platform has, and uploads the exact frames (the phone cannot sign or check them; the platform
 *   verifies the meter's signatures).
 * - Offline (or when the server cannot be reached), the frames wait in localStorage and are sent when the
 *   phone is back online. The key starts with "citygas." so logging out clears it with the other saved data.
 *
 * Every text comes from the page (`#meter-strings`, translated by the server). No dependencies, no build step.
 * @module app/meter
 */
import { BluetoothTransport, MeterLinkClient, WebSocketTransport } from "/static/meterlink.js";

const QUEUE_KEY = "citygas.meter.uploads.v1";
const MAX_QUEUED = 20;
const ACCEPTED = new Set(["credit_added", "management_applied", "key_change_section_stored", "key_changed", "test_started"]);

/** @returns {Record<string, string>} */
function readStrings() {
  const element = document.getElementById("meter-strings");
  try {
    return element ? JSON.parse(element.textContent || "{}") : {};
  } catch {
    return {};
  }
}

/** Fill `{name}` placeholders the server left in a translated string. */
function fill(text, values) {
  return String(text).replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** Indian digit grouping: 1,23,45,678. @param {number} whole */
function groupIndian(whole) {
  const digits = String(whole);
  if (digits.length <= 3) return digits;
  let head = digits.slice(0, -3);
  const tail = digits.slice(-3);
  const pairs = [];
  while (head.length > 2) {
    pairs.unshift(head.slice(-2));
    head = head.slice(0, -2);
  }
  if (head) pairs.unshift(head);
  return [...pairs, tail].join(",");
}

/** Integer paise → "₹1,23,456.78" (as the server's `inr` filter writes it). */
export function formatInr(paise) {
  const sign = paise < 0 ? "-" : "";
  const abs = Math.abs(paise);
  return `₹${sign}${groupIndian(Math.floor(abs / 100))}.${String(abs % 100).padStart(2, "0")}`;
}

/** Integer litres → "12.345 SCM". */
export function formatScm(litres) {
  return `${Math.floor(litres / 1000)}.${String(litres % 1000).padStart(3, "0")} SCM`;
}

/** @returns {{url: string, frames: string[], savedAt: string}[]} */
export function queuedUploads() {
  try {
    const items = JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
    return Array.isArray(items) ? items : [];
  } catch {
    return [];
  }
}

function saveQueue(items) {
  try {
    localStorage.setItem(QUEUE_KEY, JSON.stringify(items.slice(-MAX_QUEUED)));
  } catch {
    // Storage full or disabled: the readings stay on the meter and the next sync reads them again.
  }
}

class MeterScreen {
  /** @param {HTMLElement} card */
  constructor(card) {
    this.card = card;
    this.text = readStrings();
    this.serial = card.dataset.serial || "";
    this.simulated = card.dataset.simulated === "true";
    this.mode = card.dataset.mode || "currency";
    this.uploadUrl = card.dataset.uploadUrl || "";
    this.linkPath = card.dataset.linkPath || "";
    this.csrf = card.dataset.csrfToken || "";
    this.progress = document.querySelector('[data-testid="meter-progress"]');
    this.error = document.querySelector('[data-testid="meter-error"]');
    this.queuedNote = document.querySelector('[data-testid="meter-queued"]');
    this.credit = document.querySelector('[data-testid="meter-credit"]');
    this.buttons = [...document.querySelectorAll("[data-action]")];
    this.busy = false;
  }

  init() {
    for (const button of this.buttons) {
      button.addEventListener("click", () => this.act(button.dataset.action || ""));
    }
    for (const button of document.querySelectorAll("[data-copy]")) {
      button.addEventListener("click", () => this.copy(button));
    }
    if (!this.simulated && !("bluetooth" in navigator)) {
      for (const element of document.querySelectorAll("[data-needs-bluetooth], [data-bluetooth-note]")) element.hidden = true;
      for (const element of document.querySelectorAll("[data-no-bluetooth]")) element.hidden = false;
    }
    window.addEventListener("online", () => this.flushQueue());
    this.showQueued();
    this.flushQueue();
  }

  announce(message) {
    if (this.progress) this.progress.textContent = message;
  }

  fail(message) {
    if (!this.error) return;
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  setBusy(busy) {
    this.busy = busy;
    for (const button of this.buttons) button.disabled = busy;
    this.card.setAttribute("aria-busy", busy ? "true" : "false");
  }

  async copy(button) {
    const token = button.dataset.copy || "";
    try {
      await navigator.clipboard.writeText(token);
      this.announce(this.text.copied);
    } catch {
      this.announce(this.text.copy_failed);
    }
  }

  async connect() {
    if (this.simulated) {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      return WebSocketTransport.connect(`${scheme}://${location.host}${this.linkPath}`);
    }
    if (!("bluetooth" in navigator)) throw new Error("no Web Bluetooth");
    return BluetoothTransport.request();
  }

  /** @param {string} action "send" | "sync" | "button" */
  async act(action) {
    if (this.busy) return;
    this.setBusy(true);
    this.fail("");
    let transport = null;
    try {
      this.announce(this.text.connecting);
      try {
        transport = await this.connect();
      } catch {
        this.fail(this.simulated || "bluetooth" in navigator ? this.text.connect_failed : this.text.no_bluetooth);
        this.announce("");
        return;
      }
      this.announce(this.text.connected);
      const client = new MeterLinkClient(transport);
      if (action === "send") await this.enterTokens(client);
      if (action === "button") {
        const valve = await client.pressButton();
        this.announce(fill(this.text.button_pressed, { valve: this.text[`valve_${valve}`] || valve }));
      }
      const frames = await this.readAll(client);
      transport.close();
      transport = null;
      await this.upload(frames);
    } catch {
      this.fail(this.text.connect_failed);
    } finally {
      if (transport) transport.close();
      this.setBusy(false);
    }
  }

  tokenRows() {
    return [...document.querySelectorAll('[data-testid="token-row"]')].filter((row) => row.dataset.settled !== "true");
  }

  setOutcome(row, outcome) {
    const element = row.querySelector('[data-testid="token-outcome"]');
    if (!element) return;
    element.dataset.outcome = outcome;
    element.textContent = this.text[`outcome_${outcome}`] || this.text.outcome_rejected;
  }

  async enterTokens(client) {
    const rows = this.tokenRows();
    let stopped = false;
    for (const [index, row] of rows.entries()) {
      if (stopped) {
        this.setOutcome(row, "not_sent");
        continue;
      }
      this.announce(fill(this.text.entering, { n: index + 1, total: rows.length }));
      const outcome = await client.enterToken(row.dataset.token || "");
      this.setOutcome(row, outcome);
      if (ACCEPTED.has(outcome) || outcome === "used_error") row.dataset.entered = "true";
      else stopped = true;
    }
  }

  /** Status, registers, every snapshot page, the events since the last known one: base64 frames. */
  async readAll(client) {
    this.announce(this.text.reading);
    const frames = [];
    const status = await client.readStatus();
    frames.push(status.frameBase64);
    this.showMeterStatus(status.message.status);
    frames.push((await client.readRegisters()).frameBase64);
    for (const kind of ["monthly", "daily"]) {
      for (const page of await client.readAllSnapshots(kind)) frames.push(page.frameBase64);
    }
    const afterSeq = Number(this.card.dataset.lastSeq || "0");
    let lastSeq = afterSeq;
    for (const page of await client.readEventsSince(afterSeq)) {
      frames.push(page.frameBase64);
      for (const event of page.message.events) lastSeq = Math.max(lastSeq, event.seq);
    }
    this.card.dataset.lastSeq = String(lastSeq);
    return frames;
  }

  showMeterStatus(status) {
    const amount = status.mode === "volume" ? formatScm(status.credit) : formatInr(status.credit);
    if (this.credit) this.credit.textContent = fill(this.text.meter_credit, { amount });
    const press = document.querySelector('[data-testid="press-button"]');
    if (press) press.hidden = status.valve !== "armed";
    if (status.valve === "armed" && !this.simulated) this.announce(this.text.press_button_hint);
  }

  async post(url, frames) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": this.csrf, Accept: "application/json" },
      body: JSON.stringify({ frames }),
    });
  }

  async upload(frames) {
    this.announce(this.text.uploading);
    if (!navigator.onLine) {
      this.queue(frames);
      return;
    }
    let response;
    try {
      response = await this.post(this.uploadUrl, frames);
    } catch {
      this.queue(frames);
      return;
    }
    if (response.status >= 500) {
      this.queue(frames);
      return;
    }
    if (!response.ok) {
      await this.refused(response);
      return;
    }
    this.applyResult(await response.json());
    this.announce(this.text.done);
  }

  async refused(response) {
    let code = "";
    try {
      code = (await response.json()).code || "";
    } catch {
      code = response.status === 403 ? "forbidden" : "";
    }
    if (response.status === 403) this.fail(this.text.expired);
    else if (code === "reading_signature_invalid") this.fail(this.text.refused);
    else this.fail(this.text.upload_failed);
    this.announce("");
  }

  applyResult(result) {
    for (const token of result.confirmed || []) {
      const row = document.querySelector(
        `[data-testid="token-row"][data-vend-id="${token.vend_id}"][data-position="${token.position}"]`,
      );
      if (!row) continue;
      row.dataset.settled = "true";
      const element = row.querySelector('[data-testid="token-outcome"]');
      if (element && !ACCEPTED.has(element.dataset.outcome || "") && element.dataset.outcome !== "used_error") {
        element.dataset.outcome = "confirmed";
        element.textContent = this.text.outcome_confirmed;
      }
      element?.setAttribute("data-confirmed", "true");
    }
  }

  queue(frames) {
    const items = queuedUploads();
    items.push({ url: this.uploadUrl, frames, savedAt: new Date().toISOString() });
    saveQueue(items);
    this.announce(this.text.queued);
    this.showQueued();
  }

  showQueued() {
    if (!this.queuedNote) return;
    const waiting = queuedUploads().length;
    this.queuedNote.hidden = waiting === 0;
    this.queuedNote.textContent = waiting ? this.text.queued : "";
  }

  /** Send saved uploads, oldest first; stop at the first one the network or server cannot take yet. */
  async flushQueue() {
    const items = queuedUploads();
    if (!items.length || !navigator.onLine) return;
    let sent = 0;
    while (items.length) {
      let response;
      try {
        response = await this.post(items[0].url, items[0].frames);
      } catch {
        break;
      }
      if (response.status >= 500) break;
      // A 4xx is final (not this household's meter, or not signed by it): retrying cannot help.
      if (response.ok && items[0].url === this.uploadUrl) this.applyResult(await response.json());
      items.shift();
      saveQueue(items);
      sent += 1;
    }
    this.showQueued();
    if (sent) this.announce(this.text.queued_sent);
  }
}

function init() {
  const card = document.querySelector("[data-meter-screen]");
  if (card instanceof HTMLElement) new MeterScreen(card).init();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
