// A small static file server for the chat page and its models, with HTTP Range support (the
// engine resumes cut downloads with Range requests). Usage: node serve.mjs ROOT PORT
// With MODELS_DIR / FIXTURES_DIR / SPLIT_DIR set, /models/*, /fixtures/*, /split/* are served from there. Also used by `./build.sh demo`.
// Binds to 127.0.0.1 only.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(process.argv[2] ?? ".");
const port = Number(process.argv[3] ?? 8080);
const types = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
  ".json": "application/json", ".wasm": "application/wasm", ".gguf": "application/octet-stream", ".png": "image/png",
};

// Test hooks: GET /__ranges lists the Range headers received; `?cut=N` on a request without a
// Range header sends only N bytes and then drops the connection (a download cut midway).
const ranges = [];
const mounts = [["/models/", process.env.MODELS_DIR], ["/fixtures/", process.env.FIXTURES_DIR], ["/split/", process.env.SPLIT_DIR]];

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/__ranges") return res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(ranges));
  if (req.headers.range) ranges.push({ path: url.pathname, range: req.headers.range });
  const mount = mounts.find(([prefix, dir]) => dir && url.pathname.startsWith(prefix));
  const base = mount ? path.resolve(mount[1]) : root;
  const rel = mount ? url.pathname.slice(mount[0].length - 1) : url.pathname;
  let file = path.join(base, decodeURIComponent(rel));
  if (!file.startsWith(base)) return res.writeHead(403).end();
  fs.stat(file, (err, st) => {
    if (!err && st.isDirectory()) {
      file = path.join(file, "index.html");
      st = fs.existsSync(file) ? fs.statSync(file) : null;
    }
    if (err || !st) return res.writeHead(404).end("not found");
    const headers = {
      "Content-Type": types[path.extname(file)] ?? "application/octet-stream",
      "Accept-Ranges": "bytes",
      "Cache-Control": "no-cache",
    };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), st.size - 1) : st.size - 1;
      if (start >= st.size) return res.writeHead(416, { "Content-Range": `bytes */${st.size}` }).end();
      res.writeHead(206, { ...headers, "Content-Range": `bytes ${start}-${end}/${st.size}`, "Content-Length": end - start + 1 });
      if (req.method === "HEAD") return res.end();
      return fs.createReadStream(file, { start, end }).pipe(res);
    }
    res.writeHead(200, { ...headers, "Content-Length": st.size });
    if (req.method === "HEAD") return res.end();
    const cut = Number(url.searchParams.get("cut"));
    if (cut > 0 && cut < st.size) {
      return fs.createReadStream(file, { start: 0, end: cut - 1 }).on("end", () => setTimeout(() => res.destroy(), 50)).pipe(res, { end: false });
    }
    fs.createReadStream(file).pipe(res);
  });
});
server.listen(port, "127.0.0.1", () => console.log(`serving ${root} on http://127.0.0.1:${port}/`));
