import { AspError } from "./errors.js";

/** Progress of an invocation, as the handler reported it. */
export interface Progress {
  progress: number;
  total?: number;
  message?: string;
}

/** What a completed invocation returns. */
export interface Completion {
  result: unknown;
  wallUs: number;
  cpuUs?: number;
}

/**
 * One invocation: iterate it for the streamed output (`Uint8Array` chunks;
 * credit goes back to the server as you consume), await `result` for the
 * outcome. Progress updates arrive as `progress` events.
 */
export class Invocation extends EventTarget implements AsyncIterable<Uint8Array> {
  readonly id: number;
  /** The outcome; rejects with an {@link AspError}. */
  readonly result: Promise<Completion>;
  private chunks: Uint8Array[] = [];
  private ended = false;
  private waiting?: () => void;
  private settle!: { resolve: (c: Completion) => void; reject: (e: AspError) => void };
  /** Granting consumed bytes back (set by the client). */
  private readonly grant: (bytes: number) => void;

  constructor(id: number, grant: (bytes: number) => void) {
    super();
    this.id = id;
    this.grant = grant;
    this.result = new Promise<Completion>((resolve, reject) => (this.settle = { resolve, reject }));
    // The outcome is also read through iteration; never an unhandled rejection.
    this.result.catch(() => {});
  }

  /** @internal */ _chunk(data: Uint8Array): void {
    this.chunks.push(data);
    this.wake();
  }

  /** @internal */ _progress(p: Progress): void {
    this.dispatchEvent(new CustomEvent<Progress>("progress", { detail: p }));
  }

  /** @internal */ _done(outcome: { completion?: Completion; error?: AspError }): void {
    this.ended = true;
    if (outcome.error) this.settle.reject(outcome.error);
    else this.settle.resolve(outcome.completion!);
    this.wake();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
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
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  /** The whole output as text (UTF-8), then the result. */
  async text(): Promise<{ text: string; completion: Completion }> {
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of this) text += decoder.decode(chunk, { stream: true });
    return { text: text + decoder.decode(), completion: await this.result };
  }
}
