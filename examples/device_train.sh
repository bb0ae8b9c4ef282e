#!/usr/bin/env bash
# Train a prior on a lent GPU machine within a fixed time, evaluate it, time the presets, and
# return everything under $OUT: one prepared command for a machine lent for minutes.
#
#   here, once:  mkdir -p .device-data && cp -r ../shared/datasets/CBSD432 .device-data/   # git-ignored
#   on the GPU:  bash examples/device_train.sh CONFIG SECONDS [--set key=value ...]
#                e.g. bash examples/device_train.sh rgm-kld-d-pnp-gpu 360
#                (the device tool: carry .device-data; timeout = SECONDS + ~3 minutes)
#
# SECONDS bounds the training (train.max_seconds: it stops after the first step past it and saves as
# at its last step). Then: one denoiser call of the twin and of the new prior on 24 training crops
# (denoise_eval.md), and seconds per 256² image of every task's preset on this device (time_presets.md).
# Returned: the checkpoint's model.safetensors, config.yaml and model_card.md, log.jsonl, the last
# sample grid, the tails of the logs. Nothing is installed from a registry: the machine's image has
# torch, scikit-image, click, pyyaml, safetensors and tqdm. DATA (default .device-data/CBSD432) and
# TWIN (default mmse-color) may be set in the environment.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG SECONDS [--set key=value ...]" >&2
    exit 2
fi
config=$1
secs=$2
shift 2
out=${OUT:-device-out}
data=${DATA:-.device-data/CBSD432}
twin=${TWIN:-mmse-color}
run=runs/device-$(date +%s)
mkdir -p "$out"
if [ ! -d "$data" ]; then
    echo "error: no training images at $data (copy a dataset into .device-data/ and carry it)" >&2
    exit 2
fi

pip install --quiet --no-deps --no-build-isolation -e . > "$out/pip.log" 2>&1 || {
    tail -n 20 "$out/pip.log" >&2
    exit 1
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$out/gpu.txt" 2>&1 || true

status=0
pnp-rgm train "$config" --data "$data" --out "$run" --set train.max_seconds="$secs" "$@" \
    > "$out/train.out" 2> "$out/train.err" || status=$?
tail -c 4000 "$out/train.err" > "$out/train.err.tail" && mv "$out/train.err.tail" "$out/train.err"
ck=$run/checkpoint
if [ -f "$ck/model.safetensors" ]; then
    cp "$ck/model.safetensors" "$ck/config.yaml" "$ck/model_card.md" "$out/"
    cp "$run/log.jsonl" "$out/" 2> /dev/null || true
    last=$(ls "$run"/samples/*.png 2> /dev/null | tail -n 1)
    [ -n "$last" ] && cp "$last" "$out/"
    python examples/denoise_eval.py --data "$data" --limit 24 --crop 128 --sigmas 0.0327,0.0612,0.098,0.2 \
        "$twin" "$ck" > "$out/denoise_eval.md" 2> "$out/denoise_eval.err" || status=$?
    cat "$out/denoise_eval.md"
fi
python examples/time_presets.py --device auto --precision fp32,bf16 > "$out/time_presets.md" 2> "$out/time_presets.err" || true
cat "$out/time_presets.md"
exit $status
