// Offline app shell: the page, its scripts and the wasm engine are served cache-first after the
// first visit (models are cached separately by the engine, in OPFS).
const SHELL = "attend-shell-v1";
const FILES = ["./", "index.html", "app.js", "app.css", "manifest.json", "attend-llm/index.js", "attend-llm/worker.js", "attend-llm/wasm/attend.js", "attend-llm/wasm/attend_bg.wasm"];

self.addEventListener("install", (e) => e.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => self.skipWaiting())));
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin || url.pathname.endsWith(".gguf")) return;
  e.respondWith(
    fetch(e.request)
      .then((r) => {
        if (r.ok) caches.open(SHELL).then((c) => c.put(e.request, r.clone()));
        return r;
      })
      .catch(() => caches.match(e.request, { ignoreSearch: true }).then((r) => r ?? Response.error())),
  );
});
