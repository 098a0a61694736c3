/**
 * The customer app's service worker, served as /app/sw.js (scope /app/) with CACHE_VERSION filled in
 * by the server from the app's static files, so a new release replaces the old caches.
 *
 * - App screens (GET /app/...): network first, with a short timeout because a slow 2G/3G answer is
 *   worse than yesterday's screen; every good answer is kept, so offline the household sees the last
 *   balance it saw, marked with when it was saved.
 * - Static files: cache first (they are versioned with the release).
 * - Never cached: anything that is not GET, payments (/pay/), log-in, receipts, the meter link.
 */
const CACHE_VERSION = "__VERSION__";
const SHELL = `citygas-shell-${CACHE_VERSION}`;
const SCREENS = `citygas-screens-${CACHE_VERSION}`;
const PRECACHE = [
  "/app/offline",
  "/app/help/gas", // the safety steps must open with no network at all
  "/static/app/app.css",
  "/static/app/app.js",
  "/static/app/icon.svg",
  "/static/app/icon-192.png",
  "/static/meterlink.js",
];
const NETWORK_TIMEOUT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(SHELL).then((cache) => cache.addAll(PRECACHE)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(
        names.filter((n) => n.startsWith("citygas-") && n !== SHELL && n !== SCREENS).map((n) => caches.delete(n)),
      ))
      .then(() => self.clients.claim()),
  );
});

function isScreen(url, request) {
  return request.mode === "navigate" && url.pathname.startsWith("/app/")
    && !url.pathname.startsWith("/app/login") && url.pathname !== "/app/offline";
}

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timeout")), ms);
    promise.then((value) => { clearTimeout(timer); resolve(value); }, (error) => { clearTimeout(timer); reject(error); });
  });
}

async function screen(request) {
  const cache = await caches.open(SCREENS);
  const network = fetch(request);
  try {
    const response = await withTimeout(network, NETWORK_TIMEOUT_MS);
    // Keep only real screens of a logged-in household (a redirect to the log-in page is not one).
    if (response.ok && !response.redirected) cache.put(request, response.clone());
    return response;
  } catch {
    const saved = await cache.match(request, { ignoreSearch: false });
    if (saved) return saved;
    // The timeout fired but the network may still answer: prefer it to the offline page.
    try { return await network; } catch { /* offline */ }
    return (await caches.match("/app/offline")) || new Response("Offline", { status: 503 });
  }
}

async function staticFile(request) {
  const cached = await caches.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) (await caches.open(SHELL)).put(request, response.clone());
  return response;
}

// A page the worker did not serve (the very first visit, before it took control) asks to be saved.
self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "save-screen") return;
  const url = new URL(data.url, self.location.origin);
  if (url.origin !== self.location.origin || !url.pathname.startsWith("/app/")) return;
  event.waitUntil(
    fetch(url, { credentials: "same-origin" }).then(async (response) => {
      if (response.ok && !response.redirected) await (await caches.open(SCREENS)).put(url.href, response);
    }).catch(() => {}),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (isScreen(url, request)) event.respondWith(screen(request));
  else if (url.pathname.startsWith("/static/") || url.pathname.startsWith("/fonts/")) event.respondWith(staticFile(request));
});
