/**
 * Agent Socket (ASP/1) for browsers and Node.
 *
 * The protocol runs in asp-proto's Rust `Session`, compiled to WebAssembly:
 * the same state machine as the Rust clients. This package connects it to
 * the platform `WebSocket` (or the `ws` package on Node 20) and to timers.
 *
 * ```ts
 * const client = await connect("wss://agent.example/v1/agent-socket", { token });
 * const call = client.invoke("tokens", { n: 5 });
 * for await (const chunk of call) process(chunk);
 * const { result } = await call.result;
 * ```
 */
export { connect, AspClient } from "./client.js";
export { Invocation } from "./invocation.js";
export { AspError, ConnectError, RefusedError } from "./errors.js";
export { loadCore, decodeFrames, errorName, frameHeaders } from "./core.js";
