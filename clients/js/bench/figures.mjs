// Figures for the browser client (issue: "ASP in the browser"): echo
// round-trip p50 and the `tokens` streaming rate, from headless Chromium,
// from Node, and from the Rust client, one after another against the same
// release `asp serve` over ws:// on loopback. Not a test; run by hand:
//
//   cargo build --release -p asp-cli -p asp-tokio --example client_figures
//   ASP_BIN=../../target/release/asp node bench/figures.mjs [CALLS] [TOKENS]
import { spawnSync } from "node:child_process";
import { chromium } from "playwright-core";
import { connect } from "../dist/index.js";
import { serve, start, stopAll } from "../test/support.mjs";

const calls = Number(process.argv[2] ?? 2000);
const tokens = Number(process.argv[3] ?? 50000);

/** The measurement, as source that runs in the page and in Node alike. */
async function measure(asp, [url, calls, tokens]) {
  const client = await asp.connect(url);
  const rtts = [];
  for (let i = 0; i < calls + calls / 10; i++) {
    const t0 = performance.now();
    await client.invoke("echo", { q: "hi" }).result;
    if (i >= calls / 10) rtts.push((performance.now() - t0) * 1000);
  }
  rtts.sort((a, b) => a - b);
  // Streaming: the best of three after an untimed run (the JS engines
  // compile hot wasm and JS in tiers; the Rust client is compiled ahead).
  let seconds = Infinity;
  let bytes = 0;
  for (let run = 0; run < 4; run++) {
    const t0 = performance.now();
    bytes = 0;
    const call = client.invoke("tokens", { n: tokens, delay_ms: 0 });
    for await (const chunk of call) bytes += chunk.byteLength;
    await call.result;
    if (run > 0) seconds = Math.min(seconds, (performance.now() - t0) / 1000);
  }
  client.close();
  return { echo_p50_us: +rtts[rtts.length >> 1].toFixed(1), tokens_per_s: Math.round(tokens / seconds), mib_per_s: +(bytes / seconds / 1048576).toFixed(2) };
}

const server = await serve();
const rows = [];

const inspector = (await start(["inspect", "--listen", "127.0.0.1:0"])).match(/http:\/\/\S+/)[0];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
const page = await browser.newPage();
await page.goto(inspector);
rows.push({
  client: "chromium",
  ...(await page.evaluate(async ([source, arg]) => {
    const asp = await import("/dist/index.js");
    return new Function("asp", "arg", `return (${source})(asp, arg);`)(asp, arg);
  }, [measure.toString(), [server.url, calls, tokens]])),
});
await browser.close();

rows.push({ client: "node", ...(await measure({ connect }, [server.url, calls, tokens])) });

const rust = new URL("../../../target/release/examples/client_figures", import.meta.url).pathname;
const out = spawnSync(rust, [server.url, String(calls), String(tokens)], { encoding: "utf8" });
if (out.status !== 0) throw new Error(`${rust}: ${out.stderr || out.error}`);
rows.push(JSON.parse(out.stdout));

const base = rows.find((r) => r.client === "rust");
console.log(`| client | echo p50 µs | tokens/s | MiB/s | streaming vs Rust |`);
console.log(`|---|---:|---:|---:|---:|`);
for (const r of rows) console.log(`| ${r.client} | ${r.echo_p50_us} | ${r.tokens_per_s} | ${r.mib_per_s} | ${(r.tokens_per_s / base.tokens_per_s).toFixed(2)}x |`);
stopAll();
