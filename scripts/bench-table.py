#!/usr/bin/env python3
"""Print the asp-proto codec benchmark as a table: frames/s, GB/s, ratio to copy.

Reads criterion's estimates under target/criterion (run `cargo bench -p
asp-proto --bench codec` first). Uses the median of each benchmark.
"""
import json
import os
import sys

ROOT = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
CRIT = os.path.join(ROOT, "criterion")
CASES = ["stream_16B", "stream_1KiB", "stream_64KiB", "invoke"]
KINDS = ["copy", "decode_bytes", "decode_slice", "encode"]


def load(case, kind):
    base = os.path.join(CRIT, case, kind)
    if not os.path.isdir(base):
        return None
    (param,) = [d for d in os.listdir(base) if d.isdigit()]
    with open(os.path.join(base, param, "new", "estimates.json")) as f:
        ns = json.load(f)["median"]["point_estimate"]
    with open(os.path.join(base, param, "new", "benchmark.json")) as f:
        nbytes = json.load(f)["throughput"]["Bytes"]
    return int(param), ns, nbytes


def main():
    rows = []
    for case in CASES:
        base = load(case, "copy")
        if base is None:
            sys.exit(f"no results for {case}: run `cargo bench -p asp-proto --bench codec` first")
        for kind in KINDS:
            frames, ns, nbytes = load(case, kind)
            rows.append((case, kind, frames / ns * 1e9, nbytes / ns, base[1] / ns))
    print("| case | operation | frames/s | GB/s | vs copy |")
    print("|---|---|---:|---:|---:|")
    for case, kind, fps, gbps, ratio in rows:
        print(f"| {case} | {kind} | {fps/1e6:,.2f} M | {gbps:,.2f} | {ratio:,.2f}x |")


main()
