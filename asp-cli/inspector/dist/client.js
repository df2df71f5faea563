import { ClientSession, frameHeaders, loadCore } from "./core.js";
import { AspError, ConnectError, refused } from "./errors.js";
import { Invocation } from "./invocation.js";
const OPEN = 1;
const BACKOFF_MIN = 50;
const BACKOFF_MAX = 2000;
async function defaultWebSocket() {
    const global = globalThis.WebSocket;
    if (global)
        return global;
    const ws = await import("ws");
    return ws.default;
}
/** Connects to an ASP/1 server over `ws://` or `wss://` and completes the handshake. */
export async function connect(url, options = {}) {
    await loadCore();
    const WS = options.WebSocket ?? (await defaultWebSocket());
    const client = new AspClient(url, options, WS);
    options.onClient?.(client);
    client._start();
    await client._opened;
    return client;
}
/**
 * A connected client. Events: `state` ({@link ConnectionState}), `tools`
 * (the server's tool set changed), `frame` ({@link FrameRecord}).
 */
export class AspClient extends EventTarget {
    url;
    /** @internal resolves once HELLO is answered */
    _opened;
    session;
    WS;
    options;
    ws;
    timer;
    timerAt;
    invocations = new Map();
    handlers = new Map();
    localTools = new Map();
    attempt = 0;
    backoff = BACKOFF_MIN;
    reconnecting = false;
    opened;
    closedReason;
    /** @internal use {@link connect} */
    constructor(url, options, WS) {
        super();
        this.url = url;
        this.options = options;
        this.WS = WS;
        for (const tool of options.tools ?? [])
            this.localTools.set(tool.spec.name, tool);
        this._opened = new Promise((resolve, reject) => (this.opened = { resolve, reject }));
        this.session = new ClientSession({ token: options.token, name: options.name, resume: options.resume, heartbeatMs: options.heartbeatMs }, (options.tools ?? []).map((t) => t.spec), performance.now());
    }
    /** @internal opens the first socket (after `onClient` has run) */
    _start() {
        this.open(true);
    }
    /** The connection id the server assigned. */
    get connectionId() {
        return this.session.connectionId();
    }
    /** The server's tools as last announced. */
    get tools() {
        return this.session.peerTools();
    }
    /** Round-trip time from PING/PONG, ms. */
    get rttMs() {
        return this.session.rttMs();
    }
    /** `handshaking`, `open`, `draining`, `detached` or `closed`. */
    get state() {
        return this.session.state();
    }
    /** Invokes `tool` with `args` (any JSON-like value; `Uint8Array` is binary). */
    invoke(tool, args, options = {}) {
        if (options.signal?.aborted)
            throw new AspError(302, "aborted before it started");
        let id;
        try {
            id = this.session.invoke(tool, args ?? null, { timeoutMs: options.timeoutMs, meta: options.meta, trace: options.trace }, performance.now());
        }
        catch (e) {
            refused(e);
        }
        const inv = new Invocation(id, (bytes) => {
            this.session.grant(id, bytes);
            this.pump();
        });
        this.invocations.set(id, inv);
        options.signal?.addEventListener("abort", () => {
            if (this.invocations.get(id) !== inv)
                return;
            try {
                this.session.interrupt(id, "aborted");
            }
            catch {
                // already over
            }
            this.pump();
        });
        this.pump();
        return inv;
    }
    /** Changes the tools this client offers, and tells the server. */
    pushTools(op, tools) {
        if (op === "replace")
            this.localTools.clear();
        for (const t of tools) {
            if (op === "remove")
                this.localTools.delete(t.spec.name);
            else
                this.localTools.set(t.spec.name, t);
        }
        try {
            this.session.pushTools(op, tools.map((t) => t.spec));
        }
        catch (e) {
            refused(e);
        }
        this.pump();
    }
    /** Counters from the session. */
    stats() {
        return this.session.stats();
    }
    /** Ends the session (`NO_ERROR`) and closes the socket. */
    close() {
        this.session.close(0, "client closed");
        this.pump();
    }
    /** Resolves when the session has ended. */
    closed() {
        if (this.closedReason)
            return Promise.resolve(this.closedReason);
        return new Promise((resolve) => this.addEventListener("state", (e) => {
            const s = e.detail;
            if (s.state === "closed")
                resolve({ code: s.code, message: s.message });
        }));
    }
    // ------------------------------------------------------------ the loop
    open(first) {
        let ws;
        try {
            ws = new this.WS(this.url, ["asp-v1"]);
        }
        catch (e) {
            return this.openFailed(first, new ConnectError("websocket", String(e)));
        }
        ws.binaryType = "arraybuffer";
        this.ws = ws;
        const limit = setTimeout(() => {
            ws.close();
            this.openFailed(first, new ConnectError("timeout", `the WebSocket did not open within ${this.options.connectTimeoutMs ?? 10000} ms`));
        }, this.options.connectTimeoutMs ?? 10000);
        let wasOpen = false;
        ws.onopen = () => {
            clearTimeout(limit);
            if (ws.protocol !== "asp-v1") {
                ws.close();
                return this.openFailed(first, new ConnectError("subprotocol", `${this.url}: the server did not select the asp-v1 subprotocol`));
            }
            wasOpen = true;
            if (!first) {
                try {
                    this.session.reconnect(performance.now());
                }
                catch {
                    ws.close();
                    return;
                }
            }
            this.pump();
        };
        ws.onmessage = (m) => {
            if (this.ws !== ws)
                return;
            const now = performance.now();
            if (typeof m.data === "string") {
                this.session.handleTextMessage(now);
            }
            else {
                const bytes = new Uint8Array(m.data);
                this.frame("in", bytes);
                this.session.handleMessage(bytes, now);
            }
            this.pump();
        };
        let lastError = "";
        ws.onerror = (event) => {
            // The `ws` package says why (e.g. "Server sent no subprotocol"); browsers do not.
            lastError = String(event.message ?? event.error?.message ?? "");
        };
        ws.onclose = (event) => {
            clearTimeout(limit);
            if (this.ws !== ws)
                return;
            this.ws = undefined;
            if (!wasOpen) {
                if (/subprotocol/i.test(lastError)) {
                    const why = `${this.url}: the server did not select the asp-v1 subprotocol (${lastError}): not an ASP/1 endpoint`;
                    return this.openFailed(first, new ConnectError("subprotocol", why));
                }
                // Browsers hide why (CORS-like): unreachable, upgrade refused, TLS,
                // or no asp-v1 all look the same. Say so rather than guess.
                const why = lastError ||
                    event.reason ||
                    `closed with ${event.code}; the browser does not say why: the server is unreachable, refused the upgrade or its certificate, or did not select the asp-v1 subprotocol`;
                return this.openFailed(first, new ConnectError("websocket", `${this.url}: the WebSocket did not open (${why})`));
            }
            this.session.handleTransportClosed(performance.now());
            this.pump();
        };
    }
    openFailed(first, error) {
        if (first && this.session.state() === "handshaking") {
            // Rejected first: the `closed` event the drain dispatches must not
            // replace the reason the connection never opened.
            this.opened.reject(error);
            this.session.close(0, error.message);
            this.drainEvents();
            return;
        }
        this.scheduleReconnect();
    }
    scheduleReconnect() {
        if (this.reconnecting || this.session.isClosed() || this.session.state() !== "detached")
            return;
        this.reconnecting = true;
        this.attempt += 1;
        const delay = this.backoff;
        this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
        this.emitState({ state: "reconnecting", attempt: this.attempt, delayMs: delay });
        setTimeout(() => {
            this.reconnecting = false;
            if (this.session.state() === "detached" && !this.ws)
                this.open(false);
        }, delay);
    }
    /** Sends what the session has, acts on its events, sets its timer; until quiet. */
    pump() {
        for (let round = 0; round < 64; round++) {
            let busy = false;
            if (this.ws && this.ws.readyState === OPEN) {
                for (let b = this.session.pollTransmit(); b !== undefined; b = this.session.pollTransmit()) {
                    this.frame("out", b);
                    this.ws.send(b);
                    busy = true;
                }
            }
            busy = this.drainEvents() || busy;
            if (!busy)
                break;
        }
        this.arm();
    }
    drainEvents() {
        let any = false;
        for (let e = this.session.pollEvent(); e !== undefined; e = this.session.pollEvent()) {
            any = true;
            this.dispatch(e);
        }
        return any;
    }
    arm() {
        const at = this.session.pollTimeout();
        if (at === this.timerAt)
            return;
        clearTimeout(this.timer);
        this.timerAt = at;
        if (at === undefined)
            return;
        this.timer = setTimeout(() => {
            this.timerAt = undefined;
            this.session.handleTimeout(performance.now());
            this.pump();
        }, Math.max(0, at - performance.now()));
    }
    frame(direction, data) {
        let frames;
        const detail = {
            direction,
            bytes: data.byteLength,
            at: performance.now(),
            get frames() {
                return (frames ??= frameHeaders(data));
            },
        };
        this.dispatchEvent(new CustomEvent("frame", { detail }));
    }
    emitState(detail) {
        this.dispatchEvent(new CustomEvent("state", { detail }));
    }
    dispatch(e) {
        switch (e.type) {
            case "connected":
                this.attempt = 0;
                this.backoff = BACKOFF_MIN;
                if (e.resumed)
                    this.emitState({ state: "resumed", cid: e.cid });
                else
                    this.emitState({ state: "connected", cid: e.cid });
                this.opened.resolve();
                break;
            case "chunk":
                this.invocations.get(e.id)?._chunk(e.data);
                if (!this.invocations.has(e.id))
                    this.session.grant(e.id, e.data.byteLength);
                break;
            case "progress":
                this.invocations.get(e.id)?._progress({ progress: e.progress, total: e.total ?? undefined, message: e.message ?? undefined });
                break;
            case "completed":
                this.invocations.get(e.id)?._done({ completion: { result: e.result, wallUs: e.wallUs, cpuUs: e.cpuUs ?? undefined } });
                this.invocations.delete(e.id);
                break;
            case "failed":
                this.invocations.get(e.id)?._done({ error: new AspError(e.code, e.message) });
                this.invocations.delete(e.id);
                break;
            case "invoked":
                this.runTool(e);
                break;
            case "interrupted": {
                const h = this.handlers.get(e.id);
                this.handlers.delete(e.id);
                h?.abort.abort(new AspError(e.code, "interrupted"));
                h?.blocked?.wake();
                break;
            }
            case "writable":
                for (const [, h] of this.handlers)
                    h.blocked?.wake();
                break;
            case "toolsChanged":
                this.dispatchEvent(new Event("tools"));
                break;
            case "goaway":
                this.emitState({ state: "draining", message: e.message ?? undefined });
                break;
            case "detached":
                // A silent peer: drop the socket; either way, dial again.
                if (this.ws) {
                    const ws = this.ws;
                    this.ws = undefined;
                    ws.close();
                }
                this.scheduleReconnect();
                break;
            case "closed":
                this.closedReason = { code: e.code, message: e.message };
                for (const [, inv] of this.invocations)
                    inv._done({ error: new AspError(e.code === 0 ? 305 : e.code, e.message) });
                this.invocations.clear();
                for (const [, h] of this.handlers)
                    h.abort.abort(new AspError(e.code, e.message));
                this.handlers.clear();
                clearTimeout(this.timer);
                if (this.ws) {
                    const ws = this.ws;
                    this.ws = undefined;
                    // What the session still queued (its ERROR(0)) goes first.
                    for (let b = this.session.pollTransmit(); b !== undefined; b = this.session.pollTransmit())
                        ws.send(b);
                    ws.close(e.websocketCode === 1000 ? 1000 : e.websocketCode, e.message.slice(0, 120));
                }
                this.opened.reject(new AspError(e.code, e.message));
                this.emitState({ state: "closed", code: e.code, message: e.message });
                break;
        }
    }
    /** Runs one of our tools for the server. */
    runTool(e) {
        const tool = this.localTools.get(e.tool);
        const id = e.id;
        if (!tool) {
            this.session.fail(id, 300, `no tool named ${e.tool}`);
            return;
        }
        const abort = new AbortController();
        const entry = { abort };
        this.handlers.set(id, entry);
        const encoder = new TextEncoder();
        const call = {
            signal: abort.signal,
            meta: e.meta ?? {},
            trace: e.trace ?? undefined,
            send: async (data) => {
                let rest = typeof data === "string" ? encoder.encode(data) : data;
                while (rest.byteLength > 0) {
                    if (abort.signal.aborted)
                        throw abort.signal.reason;
                    const left = this.session.sendChunk(id, rest);
                    this.pump();
                    if (left === 0)
                        return;
                    rest = rest.subarray(rest.byteLength - left);
                    await new Promise((wake) => (entry.blocked = { data: rest, wake }));
                    entry.blocked = undefined;
                }
            },
            progress: (progress, total, message) => {
                this.session.sendProgress(id, progress, total, message);
                this.pump();
            },
        };
        Promise.resolve()
            .then(() => tool.handler(e.args, call))
            .then((result) => {
            if (this.handlers.get(id) !== entry)
                return;
            this.handlers.delete(id);
            this.session.complete(id, result ?? null, performance.now());
            this.pump();
        }, (error) => {
            if (this.handlers.get(id) !== entry)
                return;
            this.handlers.delete(id);
            const code = error instanceof AspError ? error.code : 304; // TOOL_FAILED
            this.session.fail(id, code, String(error?.message ?? error));
            this.pump();
        });
    }
}
