#!/usr/bin/env bash
# Opt-in round trip webtune → PyTorch DistributedDataParallel (2 CPU processes, gloo) → webtune:
#
#   bash scripts/test-torch.sh            # or: WEBTUNE_TORCH=1 bash scripts/test.sh
#
# Not part of every test run: PyPI's torch wheel installs about 5.5 GB with its CUDA libraries.
# Installs examples/pytorch_ddp/requirements.txt into $WEBTUNE_CACHE/torch-venv (once), writes
# scikit-learn's digits as class folders, trains the head with `webtune train`, continues training
# every layer with `torchrun --nproc_per_node 2 examples/pytorch_ddp/continue_training.py` on twice
# as many pictures, then has webtune predict with the result and compares with PyTorch on webtune's
# own preprocessed pixels (examples/pytorch_ddp/check_agreement.py). Fails when strict loading,
# webtune's reading of the file, or the agreement (--max-prob-diff, default 1e-3) fails.
# WEBTUNE_BIN=path skips building the CLI; KEEP=1 keeps the work folder.
given_bin=${WEBTUNE_BIN:-}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MAX_PROB_DIFF=${MAX_PROB_DIFF:-1e-3}
EXAMPLE=$ROOT/examples/pytorch_ddp
VENV=$WEBTUNE_CACHE/torch-venv
PY=$VENV/bin/python

# Absolute: the steps below run in a temporary folder.
if [ -n "$given_bin" ]; then WEBTUNE_BIN=$(realpath "$given_bin"); else build_native; fi
if ! [ -f "$WEBTUNE_CACHE/weights/efficientnet_lite0.safetensors" ]; then
    fetch_downloads
    "$WEBTUNE_BIN" weights fetch --from "$WEIGHTS_PTH"
fi

if ! cmp -s "$EXAMPLE/requirements.txt" "$VENV/webtune-requirements.txt"; then
    step "installing torch and friends into $VENV (once; a few minutes)"
    # Debian's python3 makes venvs only with python3-venv (ensurepip) installed.
    python3 -c 'import ensurepip' 2>/dev/null || { as_root apt-get update -q; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --progress-bar off -r "$EXAMPLE/requirements.txt"
    cp "$EXAMPLE/requirements.txt" "$VENV/webtune-requirements.txt"
fi

WORK=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then echo "work folder: $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
cd "$WORK"
TIMES=()
timed() {
    local name=$1 start end; shift
    step "$name"
    start=$(date +%s%N)
    "$@"
    end=$(date +%s%N)
    local tenths=$(( (end - start) / 100000000 ))
    TIMES+=("$(printf '%-34s %5d.%d s' "$name" $((tenths / 10)) $((tenths % 10)))")
}

# 10 pictures a class for webtune, 20 for PyTorch (the first 10 of each the same): the second
# machine gets more data than the first saw.
"$PY" "$ROOT/bench/digits.py" small --per-class 10 --wheel-dir "$WEBTUNE_CACHE/downloads"
"$PY" "$ROOT/bench/digits.py" large --per-class 20 --wheel-dir "$WEBTUNE_CACHE/downloads"
# Two pictures a class that webtune never trained on.
mapfile -t PICTURES < <(ls large/*/*.png | awk -F/ '{ seen[$2]++ } seen[$2] > 10 && seen[$2] <= 12')

timed "webtune train (head only)" "$WEBTUNE_BIN" train small --unfreeze 0 --epochs 10 --no-flip --out webtune.safetensors
timed "torchrun: 2 processes, gloo" env OMP_NUM_THREADS=1 "$VENV/bin/torchrun" --standalone --nproc_per_node 2 \
    "$EXAMPLE/continue_training.py" webtune.safetensors large --out torch.safetensors --epochs 2
timed "webtune imagenet --save-input" "$WEBTUNE_BIN" imagenet --save-input input.f32 "${PICTURES[@]}" >/dev/null
check() {
    "$WEBTUNE_BIN" predict --json "$1" "${PICTURES[@]}" > "$1.json"
    "$PY" "$EXAMPLE/check_agreement.py" --max-prob-diff "$MAX_PROB_DIFF" "$1" input.f32 "$1.json" "${PICTURES[@]}"
}
timed "agreement, webtune's own export" check webtune.safetensors
timed "agreement, after PyTorch" check torch.safetensors
timed "webtune eval of PyTorch's model" "$WEBTUNE_BIN" eval torch.safetensors large

step "times"
printf '%s\n' "${TIMES[@]}"
echo "torch round trip: OK (${#PICTURES[@]} pictures, max |Δprob| within $MAX_PROB_DIFF)"
