/**
 * The customer app's shell behaviour (every /app/ page loads it):
 * - registers the service worker (/app/sw.js) that keeps the last screens for offline use;
 * - shows the offline banner while the phone has no network;
 * - queues forms marked `data-offline-queue` while offline and sends them when the network returns
 *   (a complaint typed in a basement reaches the care centre once the phone is back in coverage);
 * - clears the saved screens on log-out, so the next person to pick up a shared phone sees nothing.
 *
 * Hand-written, no dependencies, no build step.
 * @module app
 */

const QUEUE_KEY = "citygas.outbox.v1";

function banner() {
  return document.querySelector("[data-offline-banner]");
}

function showConnectivity() {
  const element = banner();
  if (element) element.hidden = navigator.onLine;
  document.documentElement.classList.toggle("offline", !navigator.onLine);
}

/** @returns {{action: string, fields: [string, string][], queuedAt: string, label: string}[]} */
export function queuedForms() {
  try {
    return JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
  } catch {
    return [];
  }
}

function saveQueue(items) {
  localStorage.setItem(QUEUE_KEY, JSON.stringify(items));
}

function announce(text) {
  let region = document.querySelector("[data-app-announcer]");
  if (!region) {
    region = document.createElement("p");
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    region.className = "flash";
    region.dataset.appAnnouncer = "";
    document.querySelector("main")?.prepend(region);
  }
  region.textContent = text;
}

function queueWhileOffline(event) {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-offline-queue")) return;
  if (navigator.onLine) return;
  event.preventDefault();
  const fields = [...new FormData(form).entries()].map(([k, v]) => [k, String(v)]);
  const items = queuedForms();
  items.push({ action: form.action, fields, queuedAt: new Date().toISOString(), label: form.dataset.offlineQueue });
  saveQueue(items);
  announce(form.dataset.queuedMessage || "Saved. It will be sent when you are back online.");
  form.reset();
}

let flushing = null;

/** Send what was queued offline, oldest first; stop at the first network failure and keep the rest.
 * One flush at a time: the browser's own "online" event and a second one must not send an item twice. */
export function flushQueue() {
  if (!flushing) flushing = sendQueued().finally(() => { flushing = null; });
  return flushing;
}

async function sendQueued() {
  const items = queuedForms();
  if (!items.length || !navigator.onLine) return 0;
  let sent = 0;
  while (items.length) {
    const item = items[0];
    try {
      const response = await fetch(item.action, {
        method: "POST",
        body: new URLSearchParams(item.fields),
        credentials: "same-origin",
        redirect: "follow",
      });
      // A 4xx is the server refusing this form (expired, invalid): retrying would fail the same way.
      if (response.status >= 500) break;
    } catch {
      break; // still offline after all
    }
    items.shift();
    saveQueue(items);
    sent += 1;
  }
  if (sent) announce(document.body.dataset.sentMessage || `Sent ${sent} saved item(s).`);
  return sent;
}

async function forgetSavedScreens() {
  if ("caches" in window) {
    for (const name of await caches.keys()) await caches.delete(name);
  }
  localStorage.removeItem(QUEUE_KEY);
  for (const key of Object.keys(localStorage)) if (key.startsWith("citygas.")) localStorage.removeItem(key);
}

function init() {
  showConnectivity();
  window.addEventListener("online", () => {
    showConnectivity();
    flushQueue();
  });
  window.addEventListener("offline", showConnectivity);
  document.addEventListener("submit", queueWhileOffline, true);
  for (const form of document.querySelectorAll("form[data-logout]")) {
    form.addEventListener("submit", () => { forgetSavedScreens(); });
  }
  if ("serviceWorker" in navigator && window.isSecureContext) {
    const firstVisit = !navigator.serviceWorker.controller;
    navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" })
      .then(() => navigator.serviceWorker.ready)
      .then((registration) => {
        // This page came from the network, not through the worker: ask it to keep a copy for offline.
        if (firstVisit && !document.body.hasAttribute("data-no-save")) {
          registration.active?.postMessage({ type: "save-screen", url: location.href });
        }
      })
      .catch(() => {});
  }
  flushQueue();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
