#!/usr/bin/env bash
# The device check: the training loop's speed, the engine's gpu benchmark profile, then the CUDA-path tests,
# on a machine with one GPU.
#   scripts/gpu-check.sh OUT_DIR [PROFILE]
# Fashion-MNIST is read from /usr/share/datasets/fashion-mnist; where that is missing (a bare GPU machine
# with no package registry) it is copied there from data/fashion-mnist, a git-ignored copy of the files.
# BENCH_LIMIT_S bounds the benchmark: a run cut short still leaves <profile>.partial.json (every finished
# seed's results) in OUT_DIR. PyTorch must already be installed; the repo is used in place (PYTHONPATH).
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh OUT_DIR [PROFILE]}
profile=${2:-gpu}
limit=${BENCH_LIMIT_S:-540}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
fm=/usr/share/datasets/fashion-mnist
if [ ! -e "$fm/train-images-idx3-ubyte.gz" ] && [ -d data/fashion-mnist ]; then
    mkdir -p "$fm" && cp data/fashion-mnist/* "$fm/"
fi
python3 - <<'PY' 2>&1 | tee "$out/machine.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
PY
# fit() against a bare PyTorch loop on the GPU (the loop's own overhead: host waits, launches)
timeout 120 python3 -m unlearning.bench.loop --profile "$profile" --device cuda --rounds 3 \
    --out "$out/$profile.loop.json" 2>&1 | tee "$out/loop.log"
echo "loop benchmark exit status: ${PIPESTATUS[0]}" | tee -a "$out/loop.log"
# piped output is no terminal, so the log holds the phase lines without progress bars
timeout "$limit" python3 -m unlearning.bench --profile "$profile" --out "$out" --no-cache 2>&1 | tee "$out/bench.log"
echo "benchmark exit status: ${PIPESTATUS[0]}" | tee -a "$out/bench.log"
python3 -m pytest -q -p no:cacheprovider -m gpu -rs tests/unlearning/test_cuda.py 2>&1 | tee "$out/cuda-tests.log"
echo "cuda tests exit status: ${PIPESTATUS[0]}" | tee -a "$out/cuda-tests.log"
