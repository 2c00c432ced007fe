#!/usr/bin/env bash
# Builds the browser package into web/dist/: wgconv.js, wgconv_bg.wasm, wgconv.d.ts (wasm-bindgen's
# `--target web` output, no bundler) and the demo page. Installs what it needs first: the
# wasm32-unknown-unknown target and wasm-bindgen-cli at the version Cargo.lock pins.
# Usage: web/build.sh [--dev]   (--dev: a debug build, faster to compile, slower to run)
set -euo pipefail
cd "$(dirname "$0")/.."
source web/tools.sh

profile=release
[[ "${1:-}" == "--dev" ]] && profile=dev
ensure_wasm_tools

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
echo "web/build.sh: compiling the library for wasm32-unknown-unknown ($profile)"
flags=(--lib --target wasm32-unknown-unknown --no-default-features --features web)
[[ $profile == release ]] && flags+=(--release)
cargo rustc "${flags[@]}" --crate-type cdylib
out_dir=$([[ $profile == release ]] && echo release || echo debug)
wasm="$target_dir/wasm32-unknown-unknown/$out_dir/wgconv.wasm"

rm -rf web/dist.tmp
mkdir -p web/dist.tmp
wasm-bindgen --target web --out-dir web/dist.tmp --out-name wgconv "$wasm"
cp web/index.html web/main.js web/style.css web/dist.tmp/
rm -rf web/dist
mv web/dist.tmp web/dist
echo "web/build.sh: wrote web/dist ($(ls web/dist | tr '\n' ' '))"
