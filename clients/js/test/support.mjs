// What the end-to-end tests share: the real `asp serve` and `asp inspect`
// as child processes on loopback, stopped when the test file ends.
import { after } from "node:test";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";

export const ASP = process.env.ASP_BIN ?? new URL("../../../target/debug/asp", import.meta.url).pathname;
const children = [];
after(stopAll);

/** Stops every process `start` began (test files do it in `after`). */
export function stopAll() {
  children.forEach((c) => c.kill());
}

/** Starts `asp ARGS…` and resolves to its first stdout line. */
export async function start(args) {
  const child = spawn(ASP, args, { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const exited = new Promise((_, reject) => child.once("exit", (code) => reject(new Error(`asp ${args.join(" ")} exited with ${code}`))));
  const line = new Promise((resolve) => createInterface({ input: child.stdout }).once("line", resolve));
  return Promise.race([line, exited]);
}

/**
 * `asp serve` with metrics: `{ url, metrics, ca }`. With `tls`, over wss://
 * with a certificate made now (`ca` is its PEM); else plain ws://.
 */
export async function serve({ tls = false } = {}) {
  const metrics = await freePort();
  const args = ["serve", "--bind", "127.0.0.1:0", "--metrics", `127.0.0.1:${metrics}`];
  let certFile;
  if (tls) {
    certFile = join(mkdtempSync(join(tmpdir(), "asp-js-")), "cert.pem");
    args.push("--write-cert", certFile);
  } else {
    args.push("--plaintext");
  }
  const line = await start(args);
  return {
    url: line.split(/\s+/)[1],
    metrics: `http://127.0.0.1:${metrics}/metrics`,
    ca: certFile && readFileSync(certFile, "utf8"),
  };
}

/** Resolves when the server's metrics count `tool` ended with `outcome`. */
export async function counted(metricsUrl, tool, outcome) {
  const wanted = new RegExp(`asp_invocations_total\\{tool="${tool}",outcome="${outcome}"\\} [1-9]`);
  for (let i = 0; ; i++) {
    const text = await (await fetch(metricsUrl)).text();
    if (wanted.test(text)) return;
    if (i >= 50) throw new Error(`no ${outcome} ${tool} in the server's metrics:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A TCP proxy to `url`'s host whose connections `cut()` destroys. */
export async function cuttableProxy(url) {
  const upstream = new URL(url);
  const sockets = new Set();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(Number(upstream.port), upstream.hostname);
    inbound.pipe(outbound).pipe(inbound);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => sockets.delete(s));
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `${upstream.protocol}//127.0.0.1:${server.address().port}${upstream.pathname}`,
    cut: () => sockets.forEach((s) => s.destroy()),
    close: () => server.close(),
  };
}

export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
