#!/usr/bin/env bash
# Every check CI runs, in one command: formatting, clippy, all tests, the
# dependency rules of the Sans-IO crates, file sizes, a short fuzz run of every target (seven), and the
# README's main command. Installs what it needs on a fresh machine.
#
#   ./scripts/test.sh                      # everything
#   ASP_FUZZ_SECONDS=300 ./scripts/test.sh # fuzz longer (default: 20 s per target)
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${ASP_FUZZ_SECONDS:-20}
# One clean build, so incremental caches (gigabytes for this workspace) only
# cost disk; Cargo.toml's dev profile keeps debug info to line tables.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# session_ops last: it is built without compare tracing (see below), which
# rebuilds the fuzz crate once.
FUZZ_TARGETS=(frame_decode frame_roundtrip decoder_chunked session relay pka session_ops)
step() { printf '\n==> %s\n' "$*"; }

step "toolchain: rustfmt, clippy, nightly, cargo-fuzz"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
have_nightly=yes
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal || have_nightly=no
fi
if [ "$have_nightly" = yes ] && ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

# The relay's end-to-end tests start the Python example function (standard
# library only); its cluster tests start real redis-server processes on
# loopback ports (scenarios/src/redis.rs), each stopped by its test;
# deploy/asp-relay.service is checked with `systemd-analyze verify`; the
# browser tests run Debian's Chromium headless (never a downloaded browser)
# and the TypeScript client needs Node 20+ with npm.
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (Debian packages the relay and browser tests run)"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian's package may start a system instance; the tests never use it.
fi
redis-server --version

# The whole run builds about 6 GiB (target/ with wasm and the venv 4.9, fuzz/target/ 0.8).
free_kib=$(df -Pk . | awk 'NR==2 {print $4}')
echo "disk: $((free_kib / 1024 / 1024)) GiB free in $PWD"
if [ "$free_kib" -lt $((10 * 1024 * 1024)) ]; then
  echo "warning: under 10 GiB free here; the build may run out of disk (free space or set CARGO_TARGET_DIR elsewhere)" >&2
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, vectors, properties, fuzz-corpus replay, doc tests)"
test_log=$(mktemp)
cargo test --workspace --locked 2>&1 | tee "$test_log"
passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$test_log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '([0-9]+) failed;' "$test_log" | awk '{s+=$1} END {print s+0}')
rm -f "$test_log"

step "asp-bench: --help, and a short run of the latency and streaming method (rows, rounds, JSON)"
bench_json=$(mktemp)
cargo run -q --locked -p asp-bench -- --help | grep -q "interleaved rounds"
cargo run -q --locked -p asp-bench -- latency streaming --rows raw --rows "asp-tokio, ws://" \
  --rows "asp-tokio, wss://" --rows "→" --rounds 2 --calls 20 --warmup 5 --chunks 2000 --json "$bench_json"
python3 - "$bench_json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
latency, streaming = report["latency"]["rows"], report["streaming"]["rows"]
names = [r["name"] for r in latency]
assert any(n.startswith("raw tungstenite") for n in names) and any("asp-tokio" in n for n in names), names
assert not any("MCP" in n for n in names), "--rows selects rows"
for r in latency + streaming:
    assert len(r["rounds"]) == 2 and r["median"] > 0 and r["spread"][0] <= r["median"] <= r["spread"][1], r
asp = next(r for r in latency if r["name"] == "ASP, asp-tokio, ws://")
assert asp["vs_raw"] > 0, asp
# The async-io rows' halves (each with a reactor to itself), against asp-tokio.
halves = [r for r in streaming if "→" in r["name"]]
assert len(halves) == 3 and all(r["vs_asp_tokio"] > 0 for r in halves), halves
print(f"ok: {len(latency)} latency rows, {len(streaming)} streaming rows, ASP ws:// {asp['vs_raw']:.2f}x raw in this short run")
PY
rm -f "$bench_json"

step "cargo doc (broken intra-doc links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "the Sans-IO crates depend on no runtime, socket or clock crate"
forbidden='^(tokio|async-std|async-io|smol|mio|socket2|futures|hyper|reqwest|tungstenite)( |$)'
for crate in asp-proto asp-relay-proto; do
  if cargo tree -p "$crate" -e normal --prefix none --format '{p}' | grep -E "$forbidden"; then
    echo "$crate must stay Sans-IO: the crates above must not be in its tree" >&2
    exit 1
  fi
  echo "ok: $crate: $(cargo tree -p "$crate" -e normal --prefix none --format '{p}' | sort -u | wc -l) crates, none of them I/O"
done

step "crate metadata: published crates have what crates.io shows; the rest say publish = false"
cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
unpublished = {"asp-testkit", "asp-bench", "asp-scenarios", "asp-python"}  # asp-python goes to PyPI
bad = []
for p in json.load(sys.stdin)["packages"]:
    if p["publish"] == []:
        if p["name"] not in unpublished:
            bad.append(p["name"] + ": publish = false, but it is meant for crates.io")
        continue
    if p["name"] in unpublished:
        bad.append(p["name"] + ": a test crate must say publish = false")
    for field in ("description", "license", "repository", "readme", "keywords", "categories"):
        if not p.get(field):
            bad.append(p["name"] + ": no " + field)
if bad:
    sys.exit("\n".join(bad))
print("ok: publishable crates carry description, license, repository, readme, keywords, categories")
'

step "asp-proto is the protocol only: no JSON, no base64 crate (those are the relay's; AID PKA uses base64ct, which its PEM keys bring)"
if cargo tree -p asp-proto -e normal --prefix none --format '{p}' | grep -E '^(serde_json|base64) '; then
  echo "asp-proto must not depend on serde_json or base64: move that code to asp-relay-proto" >&2
  exit 1
fi
echo "ok: no serde_json, no base64 in asp-proto"

step "no src/ file over 600 lines (split it by job)"
long=$(git ls-files --cached --others --exclude-standard '*/src/*.rs' | xargs wc -l | awk '$2 != "total" && $1 > 600 {print}')
if [ -n "$long" ]; then
  echo "$long" >&2
  echo "the files above are over 600 lines: split them by job" >&2
  exit 1
fi
echo "ok: every src/ file is 600 lines or fewer"

step "asp-async-std has no Tokio in its tree (dev-dependencies included)"
if cargo tree -p asp-async-std --prefix none --format '{p}' | grep -E '^tokio(-[a-z]+)? '; then
  echo "asp-async-std must run without Tokio: the crates above must not be in its tree" >&2
  exit 1
fi
echo "ok: $(cargo tree -p asp-async-std --prefix none --format '{p}' | sort -u | wc -l) crates, no tokio"

step "features: asp-tokio and asp-async-std without defaults build with no hickory (discovery) and no ring (ring) in their tree"
cargo check --locked -q -p asp-tokio -p asp-async-std --no-default-features --lib
for crate in asp-tokio asp-async-std; do
  if cargo tree -p "$crate" --no-default-features -e normal --prefix none --format '{p}' | grep -E '^(hickory|ring) '; then
    echo "$crate --no-default-features must not depend on hickory (feature discovery) or ring (feature ring)" >&2
    exit 1
  fi
done
echo "ok: no hickory, no ring without their features"

if [ "$have_nightly" = yes ]; then
  step "fuzz smoke: ${FUZZ_SECONDS}s per target"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (
    cd fuzz
    # No sanitizer: every fuzzed crate forbids unsafe code, and AddressSanitizer
    # made the targets about five times slower (session_ops 158 vs 873 execs/s)
    # for memory errors safe Rust cannot make. Panics and the targets' own
    # invariant checks are what the fuzzer finds.
    cargo +nightly fuzz build -s none
    for target in "${FUZZ_TARGETS[@]}"; do
      mkdir -p "$work/$target"
      # session_ops is operation sequences, not magic values: without
      # compare tracing (40% of its time) it runs 2,780 instead of 1,536
      # execs/s and finds more new inputs per minute.
      flags=(-s none)
      [ "$target" = session_ops ] && flags+=(--no-trace-compares)
      # New inputs go to the scratch dir; the committed corpus is read only.
      cargo +nightly fuzz run "${flags[@]}" "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
        | grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)|ERROR|panicked|SUMMARY' || true
      # grep hides the fuzzer's noise; its exit status is the verdict.
      test "${PIPESTATUS[0]}" -eq 0 || { echo "fuzz target $target failed: see fuzz/artifacts/$target" >&2; exit 1; }
      echo "fuzz $target: no crash in ${FUZZ_SECONDS}s"
    done
  )
else
  echo "WARNING: no nightly toolchain could be installed; fuzz smoke skipped." >&2
  echo "The corpora were still replayed on stable by the fuzz_corpus test above." >&2
fi

step "README main command: asp demo (wss:// server and client on loopback)"
cargo run --release --locked -p asp-cli -- demo

step "asp conformance against asp serve (wss://, certificate made now)"
conf_dir=$(mktemp -d)
./target/release/asp serve --bind 127.0.0.1:0 --write-cert "$conf_dir/cert.pem" > "$conf_dir/out" 2>/dev/null &
serve_pid=$!
for _ in $(seq 100); do grep -q '^serving' "$conf_dir/out" && break; sleep 0.1; done
conf_url=$(awk '/^serving/ {print $2; exit}' "$conf_dir/out")
conf_status=0
./target/release/asp conformance "$conf_url" --ca "$conf_dir/cert.pem" || conf_status=$?
kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
rm -rf "$conf_dir"
test "$conf_status" -eq 0 || { echo "asp conformance failed against asp serve" >&2; exit 1; }

step "asp-proto's blocking example: a Session over std::net and sync tungstenite"
cargo run --locked -p asp-proto --example blocking

step "asp-tokio's examples, each on its own (port 0, no files): the README's quickstart and the rest"
quick=$(cargo run --locked -q -p asp-tokio --example quickstart)
echo "$quick"
echo "$quick" | grep -q '^add → 42$' || { echo "the quickstart example did not add 2 and 40" >&2; exit 1; }
for example in client_tools live_tools auth limits shutdown discovery axum_route stdio_agent; do
  echo "-- $example"
  timeout 60 cargo run --locked -q -p asp-tokio --example "$example" || { echo "example $example failed" >&2; exit 1; }
done

step "WebAssembly core (asp-wasm), the TypeScript client (clients/js) and asp inspect, in Node and headless Chromium"
# Builds wasm + JS from source; the copy asp inspect embeds must be that build.
./scripts/build-web.sh
if ! git diff --quiet -- asp-cli/inspector || [ -n "$(git ls-files --others --exclude-standard asp-cli/inspector)" ]; then
  git status --short -- asp-cli/inspector >&2
  echo "asp-cli/inspector/ differs from a fresh build: run scripts/build-web.sh and commit asp-cli/inspector/" >&2
  exit 1
fi
js_log=$(mktemp)
(
  cd clients/js
  ASP_BIN="$PWD/../../target/release/asp" npm test
) 2>&1 | tee "$js_log"
test "${PIPESTATUS[0]}" -eq 0 || { echo "clients/js tests failed" >&2; exit 1; }
passed=$((passed + $(awk '/^# pass / {print $3}' "$js_log" | tail -1)))
failed=$((failed + $(awk '/^# fail / {print $3}' "$js_log" | tail -1)))
wasm_gz=$(gzip -9c clients/js/wasm/asp_wasm_bg.wasm | wc -c)
js_gz=$(cat clients/js/wasm/asp_wasm.js clients/js/dist/*.js | gzip -9c | wc -c)
echo "browser bundle: wasm $wasm_gz B + JS $js_gz B gzipped = $(( (wasm_gz + js_gz) / 1024 )) KiB"
rm -f "$js_log"

step "Python: asp-python (PyO3, maturin) and the agent_socket asyncio client against asp serve"
venv=target/py-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r asp-python/requirements-test.txt
(cd asp-python && VIRTUAL_ENV="$PWD/../$venv" PATH="$PWD/../$venv/bin:$PATH" maturin develop --release --locked -q)
py_log=$(mktemp)
ASP_BIN="$PWD/target/release/asp" ASP_RELAY_BIN="$PWD/target/debug/asp-relay" "$venv/bin/pytest" -q -p no:cacheprovider asp-python/tests 2>&1 | tee "$py_log"
test "${PIPESTATUS[0]}" -eq 0 || { echo "asp-python tests failed" >&2; exit 1; }
passed=$((passed + $(grep -oE '[0-9]+ passed' "$py_log" | tail -1 | cut -d' ' -f1)))
rm -f "$py_log"

printf '\nall checks passed\n'
# Totals of every test above (cargo test binaries and node:test), as one closing line.
echo "tests: $passed passed, $failed failed"
