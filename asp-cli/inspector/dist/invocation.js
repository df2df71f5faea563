/**
 * One invocation: iterate it for the streamed output (`Uint8Array` chunks;
 * credit goes back to the server as you consume), await `result` for the
 * outcome. Progress updates arrive as `progress` events.
 */
export class Invocation extends EventTarget {
    id;
    /** The outcome; rejects with an {@link AspError}. */
    result;
    chunks = [];
    ended = false;
    waiting;
    settle;
    /** Granting consumed bytes back (set by the client). */
    grant;
    constructor(id, grant) {
        super();
        this.id = id;
        this.grant = grant;
        this.result = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
        // The outcome is also read through iteration; never an unhandled rejection.
        this.result.catch(() => { });
    }
    /** @internal */ _chunk(data) {
        this.chunks.push(data);
        this.wake();
    }
    /** @internal */ _progress(p) {
        this.dispatchEvent(new CustomEvent("progress", { detail: p }));
    }
    /** @internal */ _done(outcome) {
        this.ended = true;
        if (outcome.error)
            this.settle.reject(outcome.error);
        else
            this.settle.resolve(outcome.completion);
        this.wake();
    }
    wake() {
        const w = this.waiting;
        this.waiting = undefined;
        w?.();
    }
    async *[Symbol.asyncIterator]() {
        for (;;) {
            const chunk = this.chunks.shift();
            if (chunk) {
                this.grant(chunk.byteLength);
                yield chunk;
                continue;
            }
            if (this.ended) {
                await this.result; // throws the invocation's error
                return;
            }
            await new Promise((resolve) => (this.waiting = resolve));
        }
    }
    /** The whole output as text (UTF-8), then the result. */
    async text() {
        const decoder = new TextDecoder();
        let text = "";
        for await (const chunk of this)
            text += decoder.decode(chunk, { stream: true });
        return { text: text + decoder.decode(), completion: await this.result };
    }
}
