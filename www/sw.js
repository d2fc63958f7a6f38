// Offline app shell: the page, its scripts and the wasm engine are served network-first with a
// cache fallback after the first visit (models are cached separately by the engine, in OPFS). Only
// the files listed in FILES are ever cached: any other request (models, user-pasted URLs, API
// calls, other paths on this origin) passes through untouched.
const SHELL = "attend-shell-v2";
const FILES = ["./", "index.html", "app.js", "lens.js", "app.css", "manifest.json", "attend-llm/index.js", "attend-llm/worker.js", "attend-llm/wasm/attend.js", "attend-llm/wasm/attend_bg.wasm"];
// Absolute URLs (no query) of the shell files, resolved against this worker's scope.
const SHELL_URLS = new Set(FILES.map((f) => new URL(f, self.registration.scope).href));

self.addEventListener("install", (e) => e.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => self.skipWaiting())));
self.addEventListener("activate", (e) =>
  e.waitUntil(
    // Earlier versions cached every same-origin GET: drop those caches.
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("attend-shell-") && k !== SHELL).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  ),
);
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin || !SHELL_URLS.has(url.origin + url.pathname)) return;
  const key = url.origin + url.pathname; // "./?max_tokens=12" is the page "./"
  e.respondWith(
    fetch(e.request)
      .then((r) => {
        if (r.ok && r.type === "basic") caches.open(SHELL).then((c) => c.put(key, r.clone()));
        return r;
      })
      .catch(() => caches.match(key).then((r) => r ?? Response.error())),
  );
});
