#!/usr/bin/env bash
# Every CUDA correctness check and benchmark of the BER chain, on one GPU, in under 8 minutes.
# Run from the repository root: bash benchmarks/gpu_check.sh   (results: benchmarks/results/*.json)
# Each step has its own time limit; the script stops at the first failing step.
set -euo pipefail
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv || true
# 1. correctness: channel, decoder (device == CPU bit for bit), scrambled-zero chain, no host sync in the input
#    checks and the channel (set_sync_debug_mode("error")), sync counts per call; decoder and chain throughput
timeout 240 $PY benchmarks/gpu_check.py --device cuda
# 2. channel throughput vs the copy roofline on the GPU
timeout 90 $PY benchmarks/bench_channel.py --devices cuda --out benchmarks/results/bench_channel_cuda.json
# 3. the Monte Carlo engine vs Sionna written by hand, both on the GPU (Sionna's BP decoder)
timeout 120 $PY benchmarks/bench_ber_pipeline.py --device cuda --repeats 3 --batches 4 --batch-size 2048 \
    --out benchmarks/results/bench_ber_pipeline_cuda.json
echo "gpu_check.sh: all steps passed"
