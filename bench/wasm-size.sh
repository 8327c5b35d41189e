#!/usr/bin/env bash
# What the page downloads: the wasm module's size raw and gzip -9, and the same after
# binaryen's wasm-opt (npm `binaryen`, version 132: Debian's 108 writes modules that fail to
# instantiate). Prints one Markdown row per module; writes the optimised module beside the
# input as `<name>.opt.wasm` so the page can be tried with it (copy it over www/pkg/webtune_bg.wasm).
#
#   bash bench/wasm-size.sh www/pkg/webtune_bg.wasm [more.wasm ...]
#   WASM_OPT_FLAGS="-Oz" bash bench/wasm-size.sh www/pkg/webtune_bg.wasm   # other flags
#   NO_WASM_OPT=1 bash bench/wasm-size.sh ...                              # sizes only
#
# wasm-opt comes from `npm exec --package=binaryen@132` (one download, then npm's cache) and runs
# under node with a large heap: the module is tens of MB.
set -euo pipefail
FLAGS=${WASM_OPT_FLAGS:--O3}
mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$(mb "$(stat -c %s "$3")")" "$(mb "$(gzip -9 -c "$3" | wc -c)")"; }
echo '| module | step | raw MB | gzip -9 MB |'
echo '|---|---|---|---|'
for wasm in "$@"; do
    row "$wasm" "as built (wasm-bindgen)" "$wasm"
    [ -n "${NO_WASM_OPT:-}" ] && continue
    out=${wasm%.wasm}.opt.wasm
    start=$(date +%s)
    # simd128 (burn-flex's kernels), bulk memory and the other post-MVP features rustc emits
    # for wasm32 by default (sign-ext, nontrapping float-to-int, multivalue, reference types).
    NODE_OPTIONS=--max-old-space-size=8192 npm exec --yes --package=binaryen@132 -- \
        wasm-opt $FLAGS --enable-simd --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
        --enable-mutable-globals --enable-multivalue --enable-reference-types "$wasm" -o "$out"
    row "$wasm" "wasm-opt $FLAGS ($(( $(date +%s) - start )) s)" "$out"
done
