// The same client in headless Chromium (Debian's, driven by playwright-core
// with executablePath: never a downloaded browser), loaded from the assets
// `asp inspect` embeds, against the real `asp serve` over wss://: streaming,
// interrupt, a server→client call, a tool push, resume after a cut socket,
// a server without asp-v1; then the Inspector page itself, clicked through,
// with a screenshot saved to docs/inspector.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { WebSocketServer } from "ws";
import { serve, start, counted, cuttableProxy } from "./support.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOT = new URL("../../../docs/inspector.png", import.meta.url).pathname;

let server, inspector, browser, page;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)`);
  server = await serve({ tls: true });
  const line = await start(["inspect", "--listen", "127.0.0.1:0"]);
  inspector = line.match(/http:\/\/\S+/)[0];
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // The server's certificate is made at test time for 127.0.0.1; this
    // browser profile is thrown away after the run.
    args: ["--no-sandbox", "--ignore-certificate-errors", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(inspector);
});

after(async () => {
  await browser?.close();
});

/** Runs `body(asp, arg)` in the page, with asp = the client package. */
function inPage(body, arg) {
  return page.evaluate(
    async ([source, arg]) => {
      const asp = await import("/dist/index.js");
      return new Function("asp", "arg", `return (${source})(asp, arg);`)(asp, arg);
    },
    [body.toString(), arg],
  );
}

test("in Chromium: streams tokens with progress, then the result", async () => {
  const out = await inPage(async (asp, url) => {
    const client = await asp.connect(url);
    const call = client.invoke("tokens", { n: 12, delay_ms: 0 });
    const progress = [];
    call.addEventListener("progress", (e) => progress.push(e.detail.progress));
    const { text, completion } = await call.text();
    const unknown = await client.invoke("no_such_tool").result.catch((e) => e.codeName);
    client.close();
    return { cid: client.connectionId, words: text.trim().split(/\s+/).length, result: completion.result, last: progress.at(-1), unknown };
  }, server.url);
  assert.match(out.cid, /^c-/);
  assert.deepEqual([out.words, out.result, out.last, out.unknown], [12, 12, 12, "UNKNOWN_TOOL"]);
});

test("in Chromium: aborting interrupts the handler on the server", async () => {
  const code = await inPage(async (asp, url) => {
    const client = await asp.connect(url);
    const abort = new AbortController();
    const call = client.invoke("sleep", { ms: 10000 }, { signal: abort.signal });
    setTimeout(() => abort.abort(), 100);
    const code = await call.result.then(() => "completed", (e) => e.codeName);
    client.close();
    return code;
  }, server.url);
  assert.equal(code, "CANCELLED");
  await counted(server.metrics, "sleep", "interrupted");
});

test("in Chromium: the server calls a client tool, and pushes a tool", async () => {
  const out = await inPage(async (asp, url) => {
    const client = await asp.connect(url, {
      tools: [{ spec: { name: "whoami" }, handler: async (args, call) => (await call.send("from chromium"), { me: "browser", got: args }) }],
    });
    const asked = await client.invoke("ask_client", { tool: "whoami", args: { n: 1 } }).result;
    const pushed = new Promise((resolve) => client.addEventListener("tools", resolve, { once: true }));
    await client.invoke("announce", { name: "pushed_in_browser" }).result;
    await pushed;
    client.close();
    const { output, result } = asked.result;
    return { output: output instanceof Uint8Array ? new TextDecoder().decode(output) : output, result, tools: client.tools.map((t) => t.name) };
  }, server.url);
  assert.deepEqual(out.result, { me: "browser", got: { n: 1 } });
  assert.equal(out.output, "from chromium");
  assert.ok(out.tools.includes("pushed_in_browser"), out.tools.join());
});

test("in Chromium: a cut socket is reconnected and the session resumed, output whole", async () => {
  const proxy = await cuttableProxy(server.url);
  await page.exposeFunction("cutSockets", () => proxy.cut());
  const out = await inPage(async (asp, url) => {
    const client = await asp.connect(url);
    const cid = client.connectionId;
    const states = [];
    client.addEventListener("state", (e) => states.push(e.detail.state));
    const call = client.invoke("tokens", { n: 40, delay_ms: 20 });
    const decoder = new TextDecoder();
    let text = "";
    let cut = false;
    for await (const chunk of call) {
      text += decoder.decode(chunk);
      if (!cut) {
        cut = true;
        await window.cutSockets();
      }
    }
    const result = (await call.result).result;
    client.close();
    return { words: text.trim().split(/\s+/).length, result, states, same: client.connectionId === cid };
  }, proxy.url);
  proxy.close();
  assert.deepEqual([out.words, out.result, out.same], [40, 40, true]);
  assert.equal(out.states[0], "reconnecting");
  assert.ok(out.states.includes("resumed"), out.states.join());
});

test("in Chromium: a WebSocket server without asp-v1 is a clear error", async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => false });
  await new Promise((r) => wss.once("listening", r));
  const error = await inPage(async (asp, url) => {
    try {
      await asp.connect(url);
      return "connected";
    } catch (e) {
      return { name: e.name, kind: e.kind, message: e.message };
    }
  }, `ws://127.0.0.1:${wss.address().port}/v1/agent-socket`);
  wss.close();
  assert.equal(error.name, "ConnectError", JSON.stringify(error));
  assert.match(error.message, /asp-v1/);
});

test("the Inspector: connect, list tools, stream, interrupt, see a push, frames and RTT", async () => {
  await page.goto(inspector);
  await page.fill("#url", server.url);
  await page.click("#connect");
  await page.waitForSelector("#state.open");
  await page.click('#tools li[data-tool="tokens"]');
  assert.match(await page.textContent("#schema"), /"delay_ms"/);
  await page.fill("#args", JSON.stringify({ n: 30, delay_ms: 10 }));
  await page.click("#invoke");
  await page.waitForFunction(() => document.querySelector("#result").textContent.trim() === "30");
  assert.equal((await page.textContent("#output")).trim().split(/\s+/).length, 30);
  assert.ok((await page.locator('#frames tr[data-type="STREAM"]').count()) >= 1);
  assert.ok((await page.locator('#frames tr[data-type="HELLO"]').count()) === 2, "both HELLOs logged");

  await page.click('#tools li[data-tool="sleep"]');
  await page.fill("#args", JSON.stringify({ ms: 10000 }));
  await page.click("#invoke");
  await page.waitForSelector("#interrupt:not([disabled])");
  await page.click("#interrupt");
  await page.waitForFunction(() => document.querySelector("#error").textContent.includes("CANCELLED"));

  await page.click('#tools li[data-tool="announce"]');
  await page.fill("#args", JSON.stringify({ name: "fresh_from_inspector" }));
  await page.click("#invoke");
  await page.waitForSelector('#tools li[data-tool="fresh_from_inspector"]');
  assert.match(await page.textContent("#events"), /tools pushed: \+fresh_from_inspector/);

  // PING every 2 s: an RTT shows within a few seconds.
  await page.waitForFunction(() => /RTT [0-9.]+ ms/.test(document.querySelector("#rtt").textContent), null, { timeout: 8000 });

  // The picture in the README: a streamed call with its frames.
  await page.click('#tools li[data-tool="tokens"]');
  await page.fill("#args", JSON.stringify({ n: 24, delay_ms: 5 }));
  await page.click("#invoke");
  await page.waitForFunction(() => document.querySelector("#result").textContent.trim() === "24");
  await page.setViewportSize({ width: 1400, height: 820 });
  await page.screenshot({ path: SCREENSHOT });
  assert.ok(existsSync(SCREENSHOT));
});
