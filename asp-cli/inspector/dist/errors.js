import { errorName } from "./core.js";
/** A failure with an ASP/1 wire code (SPEC.md §7): `code` 300 is `UNKNOWN_TOOL`, … */
export class AspError extends Error {
    /** The wire code. */
    code;
    /** Its SPEC name (`UNKNOWN_TOOL`), or `undefined` for an unnamed code. */
    codeName;
    constructor(code, message) {
        const name = errorName(code);
        super(`${code}${name ? " " + name : ""}: ${message}`);
        this.name = "AspError";
        this.code = code;
        this.codeName = name;
    }
}
/** Connecting failed before a session existed: `kind` says at which step. */
export class ConnectError extends Error {
    kind;
    constructor(kind, message) {
        super(message);
        this.name = "ConnectError";
        this.kind = kind;
    }
}
/** The session refused a command (e.g. `goingAway` after the server's GOAWAY). */
export class RefusedError extends Error {
    kind;
    constructor(refusal) {
        super(refusal.message);
        this.name = "RefusedError";
        this.kind = refusal.kind;
    }
}
/** Rethrows what the wasm core threw as a typed error. */
export function refused(e) {
    if (e && typeof e === "object" && "kind" in e)
        throw new RefusedError(e);
    throw e;
}
