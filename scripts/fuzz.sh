#!/usr/bin/env bash
# Fuzzes the readers of users' files with cargo-fuzz (libFuzzer), each target for a bounded time.
#   bash scripts/fuzz.sh [seconds per target, default 60] [target ...]
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if missing.
# A crash leaves its input in fuzz/artifacts/<target>/: turn it into a regression test beside
# the reader (tests/hostile_inputs.rs generates such inputs) before fixing it.
# Without nightly, `cargo test --test fuzz_mutations` runs the same entry points on bounded
# random mutations of valid files, on stable, as part of the normal test suite.
# Builds go to $CARGO_TARGET_DIR (cargo-fuzz runs plain `cargo`, which honours it), by default
# ~/.cache/webtune/fuzz-target: outside the checkout, and apart from the main build, whose
# RUSTFLAGS differ. FUZZ_BUILD_ARGS (default "--sanitizer none --codegen-units 16") are cargo-fuzz's
# build options: the readers are safe Rust, so panics, -rss_limit_mb and -timeout are the findings;
# no ASan and 16 codegen units (cargo-fuzz's default is 1) shorten the instrumented build of burn.
# FUZZ_BUILD_ARGS="" gives cargo-fuzz's defaults (ASan). Changing them rebuilds everything.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/webtune/fuzz-target}"
read -r -a BUILD_ARGS <<<"${FUZZ_BUILD_ARGS---sanitizer none --codegen-units 16}"
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(safetensors torch_zip torch_legacy decode_image export_metadata)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz.sh: no nightly toolchain; run \`rustup toolchain install nightly\`, or use \`cargo test --test fuzz_mutations\`" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install --locked cargo-fuzz
fi

cd "$ROOT"
# Memory over 2 GB is a finding too (-rss_limit_mb), as is any input taking over 10 s. A finding
# stops its target, not the others.
FAILED=()
for target in "${TARGETS[@]}"; do
  echo "== $target (${SECONDS_PER_TARGET}s)"
  cargo +nightly fuzz run --fuzz-dir fuzz "${BUILD_ARGS[@]}" "$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 -max_len=1048576 || FAILED+=("$target")
done
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "fuzz.sh: findings in ${FAILED[*]}; inputs in fuzz/artifacts/<target>/" >&2
  exit 1
fi
