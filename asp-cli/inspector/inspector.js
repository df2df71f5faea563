// The ASP Inspector page: a thin UI over @agent-socket/client, whose
// protocol runs in asp-proto's Session compiled to WebAssembly. Nothing here
// speaks ASP/1 itself; `asp inspect` serves this file with the package.
import { connect, AspError } from "./dist/index.js";

const $ = (id) => document.getElementById(id);
const MAX_FRAME_ROWS = 500;
const MAX_EVENTS = 200;

let client;
let selected;
let call;
let abort;
let started = 0;
let frameCount = 0;
let knownTools = new Map();

function event(text) {
  const li = document.createElement("li");
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  const list = $("events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

function setState(text, kind) {
  const badge = $("state");
  badge.textContent = text;
  badge.className = `badge ${kind ?? ""}`;
}

function renderTools() {
  const list = $("tools");
  list.replaceChildren();
  const tools = client ? client.tools : [];
  if (tools.length === 0) {
    const li = document.createElement("li");
    li.className = "dim";
    li.textContent = client ? "The server announced no tools." : "Connect to list the server's tools.";
    list.append(li);
  }
  for (const tool of tools) {
    const li = document.createElement("li");
    li.dataset.tool = tool.name;
    if (tool.name === selected?.name) li.className = "selected";
    const name = document.createElement("div");
    name.textContent = tool.name;
    const desc = document.createElement("div");
    desc.className = "desc";
    desc.textContent = tool.desc ?? "";
    li.append(name, desc);
    li.onclick = () => select(tool);
    list.append(li);
  }
  if (selected && !tools.some((t) => t.name === selected.name)) select(undefined);
}

/** Arguments to start from: the schema's required properties, typed. */
function exampleArgs(schema) {
  const out = {};
  const props = schema?.properties ?? {};
  for (const key of schema?.required ?? []) {
    const type = props[key]?.type;
    out[key] = props[key]?.default ?? { integer: 1, number: 1, boolean: false, array: [], object: {} }[type] ?? "";
  }
  return out;
}

function select(tool) {
  selected = tool;
  $("selected").textContent = tool ? `· ${tool.name}` : "";
  $("schema").textContent = tool ? JSON.stringify(tool.input ?? { note: "no input schema" }, null, 2) : "Select a tool to see its input schema.";
  if (tool) $("args").value = JSON.stringify(exampleArgs(tool.input), null, 2);
  $("invoke").disabled = !tool || !client;
  for (const li of $("tools").children) li.classList.toggle("selected", li.dataset.tool === tool?.name);
}

function logFrame(record) {
  for (const f of record.frames) {
    frameCount += 1;
    const tr = document.createElement("tr");
    const cells = [(record.at - started).toFixed(1), record.direction === "in" ? "←" : "→", f.label, f.requestId || "", 8 + f.payloadBytes];
    for (const value of cells) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.append(td);
    }
    tr.children[1].className = record.direction;
    tr.dataset.type = f.type;
    $("frames").prepend(tr);
  }
  while ($("frames").children.length > MAX_FRAME_ROWS) $("frames").lastChild.remove();
  $("frame-count").textContent = `(${frameCount})`;
}

function toolsChanged() {
  const now = new Map(client.tools.map((t) => [t.name, t]));
  const added = [...now.keys()].filter((n) => !knownTools.has(n));
  const removed = [...knownTools.keys()].filter((n) => !now.has(n));
  event(`tools pushed: ${added.map((n) => "+" + n).concat(removed.map((n) => "−" + n)).join(" ") || "replaced"}`);
  knownTools = now;
  renderTools();
}

async function doConnect() {
  const url = $("url").value.trim();
  const token = $("token").value || undefined;
  $("connect").disabled = true;
  setState("connecting…");
  started = performance.now();
  frameCount = 0;
  $("frames").replaceChildren();
  try {
    // Frames are logged from the first (HELLO) on: the listener goes on
    // before the handshake through the `onClient` hook. PING every 2 s
    // keeps the RTT shown fresh.
    client = await connect(url, { token, name: "asp-inspector", heartbeatMs: 2000, onClient: (c) => c.addEventListener("frame", (e) => logFrame(e.detail)) });
  } catch (e) {
    setState("failed", "closed");
    event(`connect failed: ${e.message}`);
    $("connect").disabled = false;
    return;
  }
  setState(`open · ${client.connectionId}`, "open");
  event(`connected (${client.connectionId})`);
  knownTools = new Map(client.tools.map((t) => [t.name, t]));
  client.addEventListener("tools", toolsChanged);
  client.addEventListener("state", (e) => {
    const s = e.detail;
    if (s.state === "reconnecting") setState(`reconnecting (attempt ${s.attempt})`);
    else if (s.state === "resumed") setState(`open · ${s.cid}`, "open");
    else if (s.state === "draining") setState("draining");
    else if (s.state === "closed") {
      setState(`closed (${s.code})`, "closed");
      $("connect").disabled = false;
      $("disconnect").disabled = true;
      $("invoke").disabled = true;
    }
    event(s.state + (s.message ? `: ${s.message}` : s.code !== undefined ? ` (${s.code})` : ""));
  });
  $("disconnect").disabled = false;
  renderTools();
  select(selected && client.tools.find((t) => t.name === selected.name));
}

async function doInvoke() {
  let args;
  try {
    args = JSON.parse($("args").value || "null");
  } catch (e) {
    $("error").textContent = `arguments are not JSON: ${e.message}`;
    return;
  }
  $("output").textContent = "";
  $("result").textContent = "…";
  $("error").textContent = "";
  $("progress").value = 0;
  $("progress").removeAttribute("max");
  $("progress-text").textContent = "";
  abort = new AbortController();
  const t0 = performance.now();
  try {
    call = client.invoke(selected.name, args, { signal: abort.signal });
  } catch (e) {
    $("error").textContent = e.message;
    return;
  }
  $("interrupt").disabled = false;
  call.addEventListener("progress", (e) => {
    const p = e.detail;
    if (p.total) {
      $("progress").max = p.total;
      $("progress").value = p.progress;
    }
    $("progress-text").textContent = `${p.progress}${p.total ? "/" + p.total : ""} ${p.message ?? ""}`;
  });
  const decoder = new TextDecoder();
  try {
    for await (const chunk of call) $("output").textContent += decoder.decode(chunk, { stream: true });
    const done = await call.result;
    $("result").textContent = JSON.stringify(done.result, (_, v) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v), 2);
    event(`${selected.name} completed in ${(performance.now() - t0).toFixed(1)} ms (server ${done.wallUs} µs)`);
  } catch (e) {
    $("result").textContent = "–";
    $("error").textContent = e instanceof AspError ? `${e.codeName ?? e.code}: ${e.message}` : String(e);
    event(`${selected.name} failed: ${e.message}`);
  } finally {
    $("interrupt").disabled = true;
    call = undefined;
  }
}

$("connect").onclick = doConnect;
$("disconnect").onclick = () => client?.close();
$("invoke").onclick = doInvoke;
$("interrupt").onclick = () => abort?.abort();
setInterval(() => {
  const rtt = client?.rttMs;
  $("rtt").textContent = rtt === undefined ? "RTT –" : `RTT ${rtt.toFixed(1)} ms`;
}, 500);

// `asp inspect URL` passes the URL (and token) through /config.json.
const config = await (await fetch("./config.json")).json().catch(() => ({}));
if (config.url) $("url").value = config.url;
if (config.token) $("token").value = config.token;
if (config.url && config.autoConnect) doConnect();
