#!/usr/bin/env bash
# Builds the browser bundle from source and puts it where it is used:
#   asp-wasm (asp-proto's client Session, wasm32) + wasm-bindgen glue -> clients/js/wasm/
#   the TypeScript client                                           -> clients/js/dist/
#   both, with the inspector page                                   -> asp-cli/inspector/ (embedded by `asp inspect`)
# Run it after changing asp-proto, asp-wasm or clients/js, and commit
# asp-cli/inspector/: scripts/test.sh fails when the embedded copy is stale.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
# The glue generator must be the exact version of the wasm-bindgen crate.
wasm_bindgen_version=0.2.130
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wasm_bindgen_version" ]; then
  # Not --locked: its lock file names a webpki-roots this registry lacks.
  cargo install wasm-bindgen-cli --version "$wasm_bindgen_version"
fi
cargo build --profile wasm-release --locked -p asp-wasm --target wasm32-unknown-unknown
wasm-bindgen --target web --remove-name-section --remove-producers-section \
  --out-dir clients/js/wasm target/wasm32-unknown-unknown/wasm-release/asp_wasm.wasm
(
  cd clients/js
  npm ci --no-audit --no-fund
  npm run build
)
rm -rf asp-cli/inspector/dist asp-cli/inspector/wasm
mkdir -p asp-cli/inspector/dist asp-cli/inspector/wasm
cp clients/js/dist/*.js asp-cli/inspector/dist/
cp clients/js/wasm/asp_wasm.js clients/js/wasm/asp_wasm_bg.wasm asp-cli/inspector/wasm/
