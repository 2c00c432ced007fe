#!/usr/bin/env bash
# The browser checks, exiting non-zero on any failure:
#  1. the wasm test suite (tests/web.rs: wasm-bindgen-test in headless Chromium on its WebGPU);
#  2. the demo page end to end (web/e2e: Playwright drives web/dist, filters a test image and
#     compares the canvas with native `wgconv filter` on the same image).
# Installs what it needs first: the wasm32 target, wasm-bindgen-cli at Cargo.lock's version,
# chromium and chromium-driver, and playwright-core from npm (no bundled browser).
# The native half of step 2 runs on the adapter the environment names (WGPU_BACKEND, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
source web/tools.sh
ensure_wasm_tools
ensure_chromium

export CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)}
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$PWD/web/webdriver.json"
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-900}

echo "web/run-tests.sh: 1. the wasm test suite in headless Chromium"
cargo test --target wasm32-unknown-unknown --no-default-features --features web --test web

echo "web/run-tests.sh: 2. the demo page end to end"
web/build.sh
cargo build --release --bin wgconv
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [[ -f web/e2e/package-lock.json ]]; then
    npm ci --prefix web/e2e --no-audit --no-fund
else
    npm install --prefix web/e2e --no-audit --no-fund
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node web/e2e/e2e.mjs web/dist "$target_dir/release/wgconv" "$work"
if [[ -n "${WGCONV_SCREENSHOT:-}" ]]; then
    cp "$work/screenshot.png" "$WGCONV_SCREENSHOT"
fi
echo "web/run-tests.sh: all browser checks passed"
