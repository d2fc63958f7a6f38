// A small static file server for the chat page and its models, with HTTP Range support (the
// engine resumes cut downloads with Range requests). Usage: node serve.mjs ROOT PORT (PORT 0: any
// free port; the first line printed names the URL).
// With MODELS_DIR / FIXTURES_DIR / SPLIT_DIR set, /models/*, /fixtures/*, /split/* are served from there. Also used by `./build.sh demo`.
// Binds to 127.0.0.1 only, answers only requests whose Host is this loopback address and port (a web
// page on another origin cannot reach it through DNS rebinding), never serves a file outside its
// folders (no "..", no symlink out, no sibling folder sharing the root's name as a prefix), and
// answers malformed requests with 4xx instead of dying (tests/e2e/serve-hostile.test.mjs).
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(process.argv[2] ?? ".");
const port = Number(process.argv[3] ?? 8080);
const types = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
  ".json": "application/json", ".wasm": "application/wasm", ".gguf": "application/octet-stream", ".png": "image/png",
};
// The chat page under a strict policy: only this origin's scripts (and wasm compilation), no inline
// script or style, no plugins, no <base> rewriting, no framing. Models may be fetched from any https
// URL a user pastes.
const CSP = [
  "default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "worker-src 'self'", "connect-src 'self' https:",
  "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
].join("; ");

// Test hooks: GET /__ranges lists the Range (and If-Range) headers received (the newest RANGES_KEPT); `?cut=N` on a
// request without a Range header sends only N bytes and then drops the connection (a download cut
// midway); `?stall=N` likewise sends N bytes and then nothing more, leaving the connection open (a
// stalled server: only the client can end it).
const RANGES_KEPT = 1000;
const ranges = [];
const mounts = [["/models/", process.env.MODELS_DIR], ["/fixtures/", process.env.FIXTURES_DIR], ["/split/", process.env.SPLIT_DIR]]
  .filter(([, dir]) => dir)
  .map(([prefix, dir]) => [prefix, realDir(dir)]);
const realRoot = realDir(root);

function realDir(dir) {
  try {
    return fs.realpathSync(path.resolve(dir));
  } catch {
    return path.resolve(dir);
  }
}

/** Whether `file` is `dir` or inside it (a path-separator boundary, not a string prefix). */
function inside(dir, file) {
  return file === dir || file.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

function allowedHost(host, actualPort) {
  return [`127.0.0.1:${actualPort}`, `localhost:${actualPort}`, `[::1]:${actualPort}`].includes(String(host ?? "").toLowerCase());
}

function fail(res, status, text) {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function handle(req, res) {
  if (!allowedHost(req.headers.host, server.address().port)) return fail(res, 421, "unknown host\n");
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return fail(res, 405, "method not allowed\n");
  }
  // The raw request target, parsed by hand: `new URL` would let "//host/x" change the host.
  if (!req.url.startsWith("/")) return fail(res, 400, "bad request target\n");
  const q = req.url.indexOf("?");
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : req.url.slice(q + 1));
  let pathname;
  try {
    pathname = decodeURIComponent(rawPath);
  } catch {
    return fail(res, 400, "bad percent-escape\n");
  }
  if (pathname.includes("\0") || pathname.includes("\\")) return fail(res, 400, "bad path\n");

  if (pathname === "/__ranges") {
    const body = JSON.stringify(ranges);
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
    return res.end(body);
  }
  if (req.headers.range) {
    const entry = { path: pathname, range: String(req.headers.range).slice(0, 200) };
    if (req.headers["if-range"]) entry.ifRange = String(req.headers["if-range"]).slice(0, 200);
    ranges.push(entry);
    if (ranges.length > RANGES_KEPT) ranges.splice(0, ranges.length - RANGES_KEPT);
  }
  const mount = mounts.find(([prefix]) => pathname.startsWith(prefix));
  const base = mount ? mount[1] : realRoot;
  const rel = mount ? pathname.slice(mount[0].length - 1) : pathname;
  const wanted = path.join(base, rel);
  if (!inside(base, wanted)) return fail(res, 403, "forbidden\n");
  let file, st;
  try {
    // realpath resolves every symlink on the way: the file itself must still be inside `base`.
    file = fs.realpathSync(wanted);
    st = fs.statSync(file);
    if (st.isDirectory()) {
      file = fs.realpathSync(path.join(file, "index.html"));
      st = fs.statSync(file);
    }
  } catch {
    return fail(res, 404, "not found\n");
  }
  if (!inside(base, file)) return fail(res, 403, "forbidden\n");
  if (!st.isFile()) return fail(res, 404, "not found\n");

  const type = types[path.extname(file)] ?? "application/octet-stream";
  const headers = {
    "Content-Type": type,
    "Accept-Ranges": "bytes",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
  };
  if (type.startsWith("text/html")) headers["Content-Security-Policy"] = CSP;
  // Validators, so that a client resuming a download can tell whether the file changed.
  const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
  headers.ETag = etag;
  headers["Last-Modified"] = st.mtime.toUTCString();
  // If-Range: the range only when the client's copy is this file; otherwise the whole file (200).
  const ifRange = req.headers["if-range"];
  const rangeApplies = !ifRange || ifRange === etag || ifRange === headers["Last-Modified"];
  const send = (start, end) => {
    const stream = fs.createReadStream(file, { start, end });
    stream.on("error", () => res.destroy());
    return stream;
  };
  if (req.headers.range && rangeApplies) {
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range);
    const start = range ? Number(range[1]) : NaN;
    const end = range && range[2] ? Math.min(Number(range[2]), st.size - 1) : st.size - 1;
    // Malformed, reversed (bytes=5-3) or past the end: not satisfiable.
    if (!range || !Number.isSafeInteger(start) || start >= st.size || (range[2] && Number(range[2]) < start)) {
      return res.writeHead(416, { "Content-Range": `bytes */${st.size}`, "Content-Length": 0 }).end();
    }
    res.writeHead(206, { ...headers, "Content-Range": `bytes ${start}-${end}/${st.size}`, "Content-Length": end - start + 1 });
    if (req.method === "HEAD") return res.end();
    return send(start, end).pipe(res);
  }
  res.writeHead(200, { ...headers, "Content-Length": st.size });
  if (req.method === "HEAD") return res.end();
  const cut = Number(query.get("cut"));
  if (cut > 0 && cut < st.size && !req.headers.range) {
    return send(0, cut - 1).on("end", () => setTimeout(() => res.destroy(), 50)).pipe(res, { end: false });
  }
  const stall = Number(query.get("stall"));
  if (stall > 0 && stall < st.size && !req.headers.range) return send(0, stall - 1).pipe(res, { end: false });
  send().pipe(res);
}

const server = http.createServer((req, res) => {
  try {
    handle(req, res);
  } catch (e) {
    // A bug or an odd request must never take the server down.
    console.error(`serve: ${req.method} ${JSON.stringify(req.url)}: ${e?.stack ?? e}`);
    if (!res.headersSent) fail(res, 500, "internal error\n");
    else res.destroy();
  }
});
server.listen(port, "127.0.0.1", () => console.log(`serving ${root} on http://127.0.0.1:${server.address().port}/`));
