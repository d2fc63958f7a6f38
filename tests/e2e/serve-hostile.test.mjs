// The demo server (tests/e2e/serve.mjs) against hostile requests, sent over raw sockets so that
// paths reach it exactly as written (no client-side normalisation). Each case checks the status
// code, and the server must still answer afterwards. Needs only node (no browser, no GPU).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort, serve } from "./harness.mjs";

let dir, server, port;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "attend-serve-"));
  const www = path.join(dir, "www");
  fs.mkdirSync(path.join(www, "sub"), { recursive: true });
  fs.mkdirSync(path.join(dir, "www-secret"));
  fs.writeFileSync(path.join(www, "index.html"), "<!doctype html><title>t</title>");
  fs.writeFileSync(path.join(www, "a.txt"), "0123456789");
  fs.writeFileSync(path.join(www, "sub", "b.txt"), "inside");
  fs.writeFileSync(path.join(dir, "www-secret", "key.txt"), "SECRET-KEY");
  fs.writeFileSync(path.join(dir, "outside.txt"), "SECRET-OUTSIDE");
  fs.symlinkSync(path.join(dir, "www-secret", "key.txt"), path.join(www, "link-out.txt"));
  fs.symlinkSync(path.join(dir, "www-secret"), path.join(www, "dir-out"));
  fs.symlinkSync(path.join(www, "a.txt"), path.join(www, "link-in.txt"));
  port = await freePort();
  server = await serve(port, {}, www);
});

after(() => {
  server?.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Sends `head` (request line and headers, CRLF-separated, without the blank line) and reads the
 *  whole response (the server closes the connection). */
function raw(head, { host = `127.0.0.1:${port}` } = {}) {
  const lines = head.split("\n");
  if (host !== null && !lines.some((l) => /^host:/i.test(l))) lines.splice(1, 0, `Host: ${host}`);
  if (lines[0].endsWith("HTTP/1.1")) lines.push("Connection: close");
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks = [];
    sock.setTimeout(5000, () => sock.destroy(new Error(`timeout on ${lines[0]}`)));
    sock.on("data", (d) => chunks.push(d));
    sock.on("error", reject);
    sock.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      const [headText, ...rest] = text.split("\r\n\r\n");
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headText)?.[1] ?? 0);
      const headers = {};
      for (const l of headText.split("\r\n").slice(1)) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      let body = rest.join("\r\n\r\n");
      if (/chunked/i.test(headers["transfer-encoding"] ?? "")) body = dechunk(body);
      resolve({ status, headers, body, text });
    });
    sock.write(lines.join("\r\n") + "\r\n\r\n");
  });
}

function dechunk(s) {
  let out = "";
  for (;;) {
    const eol = s.indexOf("\r\n");
    const n = parseInt(s.slice(0, eol), 16);
    if (!(n > 0)) return out;
    out += s.slice(eol + 2, eol + 2 + n);
    s = s.slice(eol + 2 + n + 2);
  }
}

async function alive() {
  assert.equal(server.exitCode, null, "the server process died");
  const r = await raw("GET /a.txt HTTP/1.1");
  assert.equal(r.status, 200);
  assert.equal(r.body, "0123456789");
}

test("ordinary files, ranges and the test hooks still work", async () => {
  await alive();
  const part = await raw("GET /a.txt HTTP/1.1\nRange: bytes=2-4");
  assert.equal(part.status, 206);
  assert.equal(part.body, "234");
  assert.equal(part.headers["content-range"], "bytes 2-4/10");
  assert.equal((await raw("GET /a.txt HTTP/1.1\nRange: bytes=20-")).status, 416);
  assert.equal((await raw("GET /sub/b.txt HTTP/1.1")).body, "inside");
  assert.equal((await raw("GET /link-in.txt HTTP/1.1")).body, "0123456789", "a symlink inside the root");
  assert.equal((await raw("HEAD /a.txt HTTP/1.1")).status, 200);
  const log = JSON.parse((await raw("GET /__ranges HTTP/1.1")).body);
  assert.deepEqual(log.at(-1), { path: "/a.txt", range: "bytes=20-" });
  const cut = await raw("GET /a.txt?cut=3 HTTP/1.1");
  assert.equal(cut.status, 200);
  assert.equal(cut.body, "012", "?cut=N sends N bytes, then drops the connection");
});

test("HTML carries a strict Content-Security-Policy", async () => {
  for (const p of ["/", "/index.html"]) {
    const r = await raw(`GET ${p} HTTP/1.1`);
    assert.equal(r.status, 200, p);
    const csp = r.headers["content-security-policy"] ?? "";
    for (const d of ["default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "worker-src 'self'",
      "connect-src 'self' https:", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"]) {
      assert.ok(csp.split(";").map((s) => s.trim()).includes(d), `${p}: CSP ${JSON.stringify(csp)} lacks ${d}`);
    }
    assert.ok(!/unsafe-inline/.test(csp), csp);
  }
});

test("no file outside the root: sibling folders, dot-dot, symlinks", async () => {
  for (const p of [
    "/..%2fwww-secret%2fkey.txt", // resolves to <root>-secret/key.txt: shares the root's prefix
    "/../www-secret/key.txt",
    "/..%2f..%2f" + "outside.txt",
    "/%2e%2e/outside.txt",
    "/sub/../../outside.txt",
    "/..\\outside.txt",
    "/link-out.txt", // a symlink out of the root
    "/dir-out/key.txt", // through a symlinked folder
  ]) {
    const r = await raw(`GET ${p} HTTP/1.1`);
    assert.ok([400, 403, 404].includes(r.status), `${p}: status ${r.status}`);
    assert.ok(!r.text.includes("SECRET"), `${p} leaked a file outside the root`);
  }
  await alive();
});

test("bad ranges, bad escapes and NUL bytes are answered, not fatal", async () => {
  assert.equal((await raw("GET /a.txt HTTP/1.1\nRange: bytes=5-3")).status, 416);
  await alive();
  for (const p of ["/%E0%A4%A", "/%zz", "/a.txt%00", "/a.txt%00.html", "/%C0%AF"]) {
    const r = await raw(`GET ${p} HTTP/1.1`);
    assert.ok([400, 404].includes(r.status), `${p}: status ${r.status}`);
    await alive();
  }
  assert.equal((await raw("POST /a.txt HTTP/1.1\nContent-Length: 0")).status, 405);
  await alive();
});

test("only loopback Host headers are served (DNS rebinding)", async () => {
  for (const host of [`localhost:${port}`, `[::1]:${port}`, `127.0.0.1:${port}`]) {
    assert.equal((await raw("GET /a.txt HTTP/1.1", { host })).status, 200, host);
  }
  for (const host of [`evil.example:${port}`, "127.0.0.1", `127.0.0.1:${port + 1}`, `localhost.evil.example:${port}`]) {
    const r = await raw("GET /a.txt HTTP/1.1", { host });
    assert.ok([403, 421].includes(r.status), `${host}: status ${r.status}`);
    assert.ok(!r.body.includes("0123456789"), host);
  }
  // HTTP/1.0 without a Host header at all.
  const r = await raw("GET /a.txt HTTP/1.0", { host: null });
  assert.ok([400, 403, 421].includes(r.status), `no Host: status ${r.status}`);
  await alive();
});

test("the Range log stays bounded", async () => {
  const n = 1100;
  const sock = net.connect(port, "127.0.0.1");
  await new Promise((r) => sock.once("connect", r));
  // Pipelined on one keep-alive connection; the last request closes it.
  let req = "";
  for (let i = 0; i < n; i++) {
    req += `GET /a.txt HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nRange: bytes=${i % 10}-\r\n${i === n - 1 ? "Connection: close\r\n" : ""}\r\n`;
  }
  await new Promise((resolve, reject) => {
    sock.on("data", () => {});
    sock.on("close", resolve);
    sock.on("error", reject);
    sock.write(req);
  });
  const log = JSON.parse((await raw("GET /__ranges HTTP/1.1")).body);
  assert.ok(log.length <= 1000, `the range log holds ${log.length} entries`);
  assert.deepEqual(log.at(-1), { path: "/a.txt", range: `bytes=${(n - 1) % 10}-` }, "the newest entry is kept");
  await alive();
});
