// The TypeScript client, on the wasm core, against the real `asp serve`
// on loopback: streaming, interrupt, a server→client call, a tool push,
// resume after the socket is cut, and a server without asp-v1.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket, { WebSocketServer } from "ws";
import { connect, AspError, ConnectError } from "../dist/index.js";
import { serve, counted, cuttableProxy } from "./support.mjs";

const server = await serve();

test("streams tokens with progress, then the result", async () => {
  const client = await connect(server.url, { name: "node-test" });
  assert.match(client.connectionId, /^c-/);
  assert.ok(client.tools.some((t) => t.name === "tokens" && t.input?.properties?.n?.type === "integer"));
  const call = client.invoke("tokens", { n: 12, delay_ms: 0 });
  const progress = [];
  call.addEventListener("progress", (e) => progress.push(e.detail.progress));
  const { text, completion } = await call.text();
  assert.equal(text.trim().split(/\s+/).length, 12);
  assert.equal(completion.result, 12);
  assert.equal(progress.at(-1), 12);
  const echo = await client.invoke("echo", { q: "hi", n: [1, 2.5, null], bin: new Uint8Array([1, 2]) }).result;
  assert.deepEqual(echo.result, { q: "hi", n: [1, 2.5, null], bin: new Uint8Array([1, 2]) });
  // Integers beyond 2^53 travel as BigInt; maps with non-string keys as ES Maps.
  const big = await client.invoke("echo", { big: 2n ** 60n, neg: -(2n ** 60n), small: 7 }).result;
  assert.deepEqual(big.result, { big: 2n ** 60n, neg: -(2n ** 60n), small: 7 });
  // A value with a non-string map key anywhere comes back with ES Maps.
  const keyed = await client.invoke("echo", { keyed: new Map([[1, "one"]]) }).result;
  assert.equal(keyed.result.get("keyed").get(1), "one");
  await assert.rejects(client.invoke("no_such_tool").result, (e) => e instanceof AspError && e.codeName === "UNKNOWN_TOOL");
  client.close();
  assert.equal((await client.closed()).code, 0);
});

test("aborting the signal interrupts the handler on the server", async () => {
  const client = await connect(server.url);
  const abort = new AbortController();
  const call = client.invoke("sleep", { ms: 10000 }, { signal: abort.signal });
  await new Promise((r) => setTimeout(r, 100));
  abort.abort();
  await assert.rejects(call.result, (e) => e instanceof AspError && e.codeName === "CANCELLED");
  // The server's handler saw it: its metrics count an interrupted `sleep`.
  await counted(server.metrics, "sleep", "interrupted");
  client.close();
});

test("the server calls a client tool, and pushes a tool", async () => {
  const seen = [];
  const client = await connect(server.url, {
    tools: [
      {
        spec: { name: "whoami", desc: "says who" },
        handler: async (args, call) => {
          seen.push(args);
          await call.send("hello ");
          await call.send("from js");
          return { me: "js", got: args };
        },
      },
    ],
  });
  const { result } = await client.invoke("ask_client", { tool: "whoami", args: { x: 1 } }).result;
  assert.deepEqual(result, { output: "hello from js", result: { me: "js", got: { x: 1 } } });
  assert.deepEqual(seen, [{ x: 1 }]);

  const changed = new Promise((resolve) => client.addEventListener("tools", resolve, { once: true }));
  await client.invoke("announce", { name: "fresh_tool" }).result;
  await changed;
  assert.ok(client.tools.some((t) => t.name === "fresh_tool"));
  client.close();
});

test("a cut socket is reconnected and the session resumed, output whole", async () => {
  const proxy = await cuttableProxy(server.url);
  const client = await connect(proxy.url);
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
      proxy.cut();
    }
  }
  assert.equal((await call.result).result, 40);
  assert.equal(text.trim().split(/\s+/).length, 40, text);
  assert.deepEqual(states.slice(0, 1), ["reconnecting"]);
  assert.ok(states.includes("resumed"), states.join());
  assert.equal(client.connectionId, cid);
  client.close();
  proxy.close();
});

test("over wss:// with the server's certificate made now", async () => {
  const tls = await serve({ tls: true });
  assert.match(tls.url, /^wss:/);
  // Node's WebSocket (the `ws` package) trusting only that certificate.
  class Trusting extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { ca: tls.ca });
    }
  }
  const client = await connect(tls.url, { WebSocket: Trusting });
  const { text, completion } = await client.invoke("tokens", { n: 5, delay_ms: 0 }).text();
  assert.equal(text.trim().split(/\s+/).length, 5);
  assert.equal(completion.result, 5);
  client.close();
  // Without trusting it, the handshake fails and says so.
  await assert.rejects(connect(tls.url, { WebSocket }), (e) => e instanceof ConnectError && /certificate/i.test(e.message));
});

test("a WebSocket server without asp-v1 is a clear error", async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, handleProtocols: () => false });
  await new Promise((r) => wss.once("listening", r));
  const url = `ws://127.0.0.1:${wss.address().port}/v1/agent-socket`;
  await assert.rejects(connect(url), (e) => {
    assert.ok(e instanceof ConnectError, String(e));
    assert.equal(e.kind, "subprotocol");
    assert.match(e.message, /asp-v1/);
    return true;
  });
  wss.close();
});
