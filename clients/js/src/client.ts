import { ClientSession, frameHeaders, loadCore } from "./core.js";
import { AspError, ConnectError, refused } from "./errors.js";
import { Invocation, type Progress } from "./invocation.js";

/** A tool as HELLO and TOOL_DEF describe it (SPEC.md §6.1). */
export interface ToolSpec {
  name: string;
  desc?: string;
  input?: unknown;
  output?: unknown;
  meta?: unknown;
}

/** What a client-side tool's handler gets besides its arguments. */
export interface ToolCall {
  /** Aborted when the server interrupts the call or the session ends. */
  signal: AbortSignal;
  /** Streams output (waits while the server has no credit for it). */
  send(data: Uint8Array | string): Promise<void>;
  progress(progress: number, total?: number, message?: string): void;
  /** The INVOKE's `meta` and `trace`. */
  meta: Record<string, string>;
  trace?: string;
}

/** A tool the server may call on this client. */
export interface LocalTool {
  spec: ToolSpec;
  handler: (args: any, call: ToolCall) => Promise<unknown> | unknown;
}

/** A WebSocket constructor: the platform's, or the `ws` package's. */
export type WebSocketLike = new (url: string, protocols: string[]) => WebSocket;

export interface ConnectOptions {
  /** Bearer token, sent in HELLO (browsers cannot set upgrade headers). */
  token?: string;
  /** Client name announced in HELLO. */
  name?: string;
  /** Resume the session after a dropped socket (default true). */
  resume?: boolean;
  /** Tools the server may call. */
  tools?: LocalTool[];
  /** PING interval in ms (default 15 000). */
  heartbeatMs?: number;
  /** Limit for the WebSocket to open (default 10 000 ms). */
  connectTimeoutMs?: number;
  /** Override the WebSocket implementation (default: global, else `ws`). */
  WebSocket?: WebSocketLike;
  /**
   * Called with the client before the handshake, so that listeners (a
   * frame log) see HELLO too.
   */
  onClient?: (client: AspClient) => void;
}

export interface InvokeOptions {
  /** Aborting sends INTERRUPT; the invocation fails with `CANCELLED`. */
  signal?: AbortSignal;
  /** The INVOKE's deadline, ms. */
  timeoutMs?: number;
  meta?: Record<string, string>;
  trace?: string;
}

/** Connection state changes, as `state` events' `detail`. */
export type ConnectionState =
  | { state: "connected"; cid: string }
  | { state: "reconnecting"; attempt: number; delayMs: number }
  | { state: "resumed"; cid: string }
  | { state: "draining"; message?: string }
  | { state: "closed"; code: number; message: string };

/** One frame's header, as the frame log shows it. */
export interface FrameHeader {
  /** The SPEC name: `HELLO`, `INVOKE`, `STREAM`, … */
  type: string;
  flags: number;
  requestId: number;
  payloadBytes: number;
  /** The type with its flags spelled out: `STREAM+PROGRESS`, `HELLO+REPLY`. */
  label: string;
}

/**
 * Every WebSocket message in and out, for inspectors: `frame` events'
 * `detail`. `frames` parses the message's frame headers on first use
 * (in the wasm core), so a page that only counts bytes pays nothing.
 */
export interface FrameRecord {
  direction: "in" | "out";
  /** Message size in bytes. */
  bytes: number;
  /** `performance.now()` when it was received or handed to the socket. */
  at: number;
  readonly frames: FrameHeader[];
}

const OPEN = 1;
const BACKOFF_MIN = 50;
const BACKOFF_MAX = 2000;

async function defaultWebSocket(): Promise<WebSocketLike> {
  const global = (globalThis as any).WebSocket;
  if (global) return global;
  const ws = await import("ws");
  return ws.default as unknown as WebSocketLike;
}

/** Connects to an ASP/1 server over `ws://` or `wss://` and completes the handshake. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<AspClient> {
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
  readonly url: string;
  /** @internal resolves once HELLO is answered */
  readonly _opened: Promise<void>;
  private readonly session: ClientSession;
  private readonly WS: WebSocketLike;
  private readonly options: ConnectOptions;
  private ws?: WebSocket;
  private timer?: ReturnType<typeof setTimeout>;
  private timerAt?: number;
  private invocations = new Map<number, Invocation>();
  private handlers = new Map<number, { abort: AbortController; blocked?: { data: Uint8Array; wake: () => void } }>();
  private localTools = new Map<string, LocalTool>();
  private attempt = 0;
  private backoff = BACKOFF_MIN;
  private reconnecting = false;
  private opened!: { resolve: () => void; reject: (e: Error) => void };
  private closedReason?: { code: number; message: string };

  /** @internal use {@link connect} */
  constructor(url: string, options: ConnectOptions, WS: WebSocketLike) {
    super();
    this.url = url;
    this.options = options;
    this.WS = WS;
    for (const tool of options.tools ?? []) this.localTools.set(tool.spec.name, tool);
    this._opened = new Promise((resolve, reject) => (this.opened = { resolve, reject }));
    this.session = new ClientSession(
      { token: options.token, name: options.name, resume: options.resume, heartbeatMs: options.heartbeatMs },
      (options.tools ?? []).map((t) => t.spec),
      performance.now(),
    );
  }

  /** @internal opens the first socket (after `onClient` has run) */
  _start(): void {
    this.open(true);
  }

  /** The connection id the server assigned. */
  get connectionId(): string | undefined {
    return this.session.connectionId();
  }

  /** The server's tools as last announced. */
  get tools(): ToolSpec[] {
    return this.session.peerTools();
  }

  /** Round-trip time from PING/PONG, ms. */
  get rttMs(): number | undefined {
    return this.session.rttMs();
  }

  /** `handshaking`, `open`, `draining`, `detached` or `closed`. */
  get state(): string {
    return this.session.state();
  }

  /** Invokes `tool` with `args` (any JSON-like value; `Uint8Array` is binary). */
  invoke(tool: string, args?: unknown, options: InvokeOptions = {}): Invocation {
    if (options.signal?.aborted) throw new AspError(302, "aborted before it started");
    let id: number;
    try {
      id = this.session.invoke(tool, args ?? null, { timeoutMs: options.timeoutMs, meta: options.meta, trace: options.trace }, performance.now());
    } catch (e) {
      refused(e);
    }
    const inv = new Invocation(id, (bytes) => {
      this.session.grant(id, bytes);
      this.pump();
    });
    this.invocations.set(id, inv);
    options.signal?.addEventListener("abort", () => {
      if (this.invocations.get(id) !== inv) return;
      try {
        this.session.interrupt(id, "aborted");
      } catch {
        // already over
      }
      this.pump();
    });
    this.pump();
    return inv;
  }

  /** Changes the tools this client offers, and tells the server. */
  pushTools(op: "add" | "remove" | "replace", tools: LocalTool[]): void {
    if (op === "replace") this.localTools.clear();
    for (const t of tools) {
      if (op === "remove") this.localTools.delete(t.spec.name);
      else this.localTools.set(t.spec.name, t);
    }
    try {
      this.session.pushTools(op, tools.map((t) => t.spec));
    } catch (e) {
      refused(e);
    }
    this.pump();
  }

  /** Counters from the session. */
  stats(): Record<string, number> {
    return this.session.stats();
  }

  /** Ends the session (`NO_ERROR`) and closes the socket. */
  close(): void {
    this.session.close(0, "client closed");
    this.pump();
  }

  /** Resolves when the session has ended. */
  closed(): Promise<{ code: number; message: string }> {
    if (this.closedReason) return Promise.resolve(this.closedReason);
    return new Promise((resolve) =>
      this.addEventListener("state", (e) => {
        const s = (e as CustomEvent<ConnectionState>).detail;
        if (s.state === "closed") resolve({ code: s.code, message: s.message });
      }),
    );
  }

  // ------------------------------------------------------------ the loop

  private open(first: boolean): void {
    let ws: WebSocket;
    try {
      ws = new this.WS(this.url, ["asp-v1"]);
    } catch (e) {
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
        } catch {
          ws.close();
          return;
        }
      }
      this.pump();
    };
    ws.onmessage = (m: MessageEvent) => {
      if (this.ws !== ws) return;
      const now = performance.now();
      if (typeof m.data === "string") {
        this.session.handleTextMessage(now);
      } else {
        const bytes = new Uint8Array(m.data as ArrayBuffer);
        this.frame("in", bytes);
        this.session.handleMessage(bytes, now);
      }
      this.pump();
    };
    let lastError = "";
    ws.onerror = (event: Event) => {
      // The `ws` package says why (e.g. "Server sent no subprotocol"); browsers do not.
      lastError = String((event as any).message ?? (event as any).error?.message ?? "");
    };
    ws.onclose = (event: CloseEvent) => {
      clearTimeout(limit);
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (!wasOpen) {
        if (/subprotocol/i.test(lastError)) {
          const why = `${this.url}: the server did not select the asp-v1 subprotocol (${lastError}): not an ASP/1 endpoint`;
          return this.openFailed(first, new ConnectError("subprotocol", why));
        }
        // Browsers hide why (CORS-like): unreachable, upgrade refused, TLS,
        // or no asp-v1 all look the same. Say so rather than guess.
        const why =
          lastError ||
          event.reason ||
          `closed with ${event.code}; the browser does not say why: the server is unreachable, refused the upgrade or its certificate, or did not select the asp-v1 subprotocol`;
        return this.openFailed(first, new ConnectError("websocket", `${this.url}: the WebSocket did not open (${why})`));
      }
      this.session.handleTransportClosed(performance.now());
      this.pump();
    };
  }

  private openFailed(first: boolean, error: ConnectError): void {
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

  private scheduleReconnect(): void {
    if (this.reconnecting || this.session.isClosed() || this.session.state() !== "detached") return;
    this.reconnecting = true;
    this.attempt += 1;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    this.emitState({ state: "reconnecting", attempt: this.attempt, delayMs: delay });
    setTimeout(() => {
      this.reconnecting = false;
      if (this.session.state() === "detached" && !this.ws) this.open(false);
    }, delay);
  }

  /** Sends what the session has, acts on its events, sets its timer; until quiet. */
  private pump(): void {
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
      if (!busy) break;
    }
    this.arm();
  }

  private drainEvents(): boolean {
    let any = false;
    for (let e = this.session.pollEvent(); e !== undefined; e = this.session.pollEvent()) {
      any = true;
      this.dispatch(e);
    }
    return any;
  }

  private arm(): void {
    const at = this.session.pollTimeout();
    if (at === this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    if (at === undefined) return;
    this.timer = setTimeout(() => {
      this.timerAt = undefined;
      this.session.handleTimeout(performance.now());
      this.pump();
    }, Math.max(0, at - performance.now()));
  }

  private frame(direction: "in" | "out", data: Uint8Array): void {
    let frames: FrameHeader[] | undefined;
    const detail: FrameRecord = {
      direction,
      bytes: data.byteLength,
      at: performance.now(),
      get frames() {
        return (frames ??= frameHeaders(data));
      },
    };
    this.dispatchEvent(new CustomEvent<FrameRecord>("frame", { detail }));
  }

  private emitState(detail: ConnectionState): void {
    this.dispatchEvent(new CustomEvent<ConnectionState>("state", { detail }));
  }

  private dispatch(e: any): void {
    switch (e.type) {
      case "connected":
        this.attempt = 0;
        this.backoff = BACKOFF_MIN;
        if (e.resumed) this.emitState({ state: "resumed", cid: e.cid });
        else this.emitState({ state: "connected", cid: e.cid });
        this.opened.resolve();
        break;
      case "chunk":
        this.invocations.get(e.id)?._chunk(e.data);
        if (!this.invocations.has(e.id)) this.session.grant(e.id, e.data.byteLength);
        break;
      case "progress":
        this.invocations.get(e.id)?._progress({ progress: e.progress, total: e.total ?? undefined, message: e.message ?? undefined } as Progress);
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
        for (const [, h] of this.handlers) h.blocked?.wake();
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
        for (const [, inv] of this.invocations) inv._done({ error: new AspError(e.code === 0 ? 305 : e.code, e.message) });
        this.invocations.clear();
        for (const [, h] of this.handlers) h.abort.abort(new AspError(e.code, e.message));
        this.handlers.clear();
        clearTimeout(this.timer);
        if (this.ws) {
          const ws = this.ws;
          this.ws = undefined;
          // What the session still queued (its ERROR(0)) goes first.
          for (let b = this.session.pollTransmit(); b !== undefined; b = this.session.pollTransmit()) ws.send(b);
          ws.close(e.websocketCode === 1000 ? 1000 : e.websocketCode, e.message.slice(0, 120));
        }
        this.opened.reject(new AspError(e.code, e.message));
        this.emitState({ state: "closed", code: e.code, message: e.message });
        break;
    }
  }

  /** Runs one of our tools for the server. */
  private runTool(e: { id: number; tool: string; args: unknown; meta: Record<string, string>; trace?: string }): void {
    const tool = this.localTools.get(e.tool);
    const id = e.id;
    if (!tool) {
      this.session.fail(id, 300, `no tool named ${e.tool}`);
      return;
    }
    const abort = new AbortController();
    const entry: { abort: AbortController; blocked?: { data: Uint8Array; wake: () => void } } = { abort };
    this.handlers.set(id, entry);
    const encoder = new TextEncoder();
    const call: ToolCall = {
      signal: abort.signal,
      meta: e.meta ?? {},
      trace: e.trace ?? undefined,
      send: async (data) => {
        let rest = typeof data === "string" ? encoder.encode(data) : data;
        while (rest.byteLength > 0) {
          if (abort.signal.aborted) throw abort.signal.reason;
          const left = this.session.sendChunk(id, rest);
          this.pump();
          if (left === 0) return;
          rest = rest.subarray(rest.byteLength - left);
          await new Promise<void>((wake) => (entry.blocked = { data: rest, wake }));
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
      .then(
        (result) => {
          if (this.handlers.get(id) !== entry) return;
          this.handlers.delete(id);
          this.session.complete(id, result ?? null, performance.now());
          this.pump();
        },
        (error) => {
          if (this.handlers.get(id) !== entry) return;
          this.handlers.delete(id);
          const code = error instanceof AspError ? error.code : 304; // TOOL_FAILED
          this.session.fail(id, code, String(error?.message ?? error));
          this.pump();
        },
      );
  }
}
