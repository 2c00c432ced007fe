# Shared by web/build.sh and web/run-tests.sh (sourced): installs the browser toolchain when missing.

# The wasm-bindgen version Cargo.lock pins; wasm-bindgen-cli must be exactly this one.
locked_wasm_bindgen() {
    awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock
}

ensure_wasm_tools() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        echo "web: installing the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
    local want have
    want=$(locked_wasm_bindgen)
    [[ -n "$want" ]] || { echo "web: no wasm-bindgen in Cargo.lock" >&2; return 1; }
    have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
    if [[ "$have" != "$want" ]]; then
        echo "web: installing wasm-bindgen-cli $want (found '${have:-none}'; about 8 minutes)"
        # Not --locked: the CLI's own lock file may name versions a mirror lacks.
        cargo install wasm-bindgen-cli --version "$want"
    fi
}

ensure_chromium() {
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        echo "web: installing chromium and chromium-driver"
        if [[ $(id -u) == 0 ]]; then SUDO=; else SUDO=sudo; fi
        $SUDO apt-get update -q
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
    fi
}
