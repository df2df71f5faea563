// SPEC.md §14's frame vectors through the wasm core: the decoder the
// browser client runs is asp-proto's, byte for byte.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadCore, decodeFrames, errorName } from "../dist/index.js";

const vectors = JSON.parse(readFileSync(new URL("../../../asp-proto/tests/vectors/frames.json", import.meta.url), "utf8"));
const bytes = (hex) => Uint8Array.from(Buffer.from(hex, "hex"));
const hex = (b) => Buffer.from(b).toString("hex");

test("every valid vector decodes to its type, flags and id, and encodes canonically", async () => {
  await loadCore();
  assert.ok(vectors.valid.length >= 30);
  for (const c of vectors.valid) {
    const frames = decodeFrames(bytes(c.hex), 1 << 20);
    assert.equal(frames.length, 1, c.name);
    const [f] = frames;
    assert.deepEqual([f.type, f.flags, f.request_id], [c.frame.type, c.frame.flags, c.frame.request_id], c.name);
    assert.equal(hex(f.canonical), c.canonical_hex ?? c.hex, c.name);
  }
});

test("every invalid vector fails with its SPEC code", async () => {
  await loadCore();
  assert.ok(vectors.invalid.length >= 40);
  for (const c of vectors.invalid) {
    assert.throws(() => decodeFrames(bytes(c.hex), c.max_payload), (e) => {
      assert.equal(e.code, c.code, `${c.name}: ${e.message}`);
      assert.equal(e.name, c.error, c.name);
      return true;
    });
    assert.equal(errorName(c.code), c.error);
  }
});
