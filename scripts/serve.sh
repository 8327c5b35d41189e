#!/usr/bin/env bash
# Sets everything up and serves the app on http://127.0.0.1:${PORT:-5173}/ with the default backbone.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ensure_wasm_target
ensure_wasm_bindgen
ensure_node_modules
fetch_downloads
make_sample_project
build_native
convert_weights
build_wasm app
step "serving on http://127.0.0.1:${PORT:-5173}/ (Ctrl-C to stop)"
cd "$ROOT/www" && exec npx vite --host 127.0.0.1 --port "${PORT:-5173}" --strictPort
