#!/usr/bin/env bash
# Sets everything up and runs every test: the native suite (the CLI's wgpu backend on lavapipe
# where there is no GPU), then the page in headless Chromium on the CPU path and on WebGPU
# (SwiftShader).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_wasm_target
ensure_wasm_bindgen
ensure_chromium
ensure_nginx
ensure_vulkan_driver
ensure_node_modules
ensure_numpy
fetch_downloads
make_sample_project

build_native
step "native tests"
(cd "$ROOT" && cargo test -j "$JOBS")

convert_weights
build_wasm test
step "building the page"
# The bench sources need the test build's bench exports; tsconfig.json leaves them out.
(cd "$ROOT/www" && npx tsc --noEmit -p tsconfig.bench.json)
# The bench mode adds www/bench.html, which bench/browser-*.mjs open; `npm run build` leaves it out.
(cd "$ROOT/www" && npm run build -- --mode bench)
step "browser end-to-end tests"
cd "$ROOT" && WEBTUNE_BIN=$WEBTUNE_BIN node --test tests/e2e/

# Opt-in: the round trip through PyTorch DistributedDataParallel (installs torch, about 5.5 GB).
if [ "${WEBTUNE_TORCH:-0}" = 1 ]; then
    WEBTUNE_BIN=$WEBTUNE_BIN bash "$ROOT/scripts/test-torch.sh"
fi
