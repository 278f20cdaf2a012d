#!/bin/bash
# One device call: detection, CUDA verdict agreement, and the GPU/CPU verification figures.
# Run from the repository root on the GPU machine after scripts/device_build.sh ran here:
#   run(command="bash scripts/device_run.sh", carry=[".device-bin"])
# Writes everything under $OUT (default ./device-out).
set -uo pipefail
OUT=${OUT:-device-out}
mkdir -p "$OUT"
B=.device-bin
# NVRTC and the driver live with the CUDA installation.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
export PARTHENON_VECTORS=${PARTHENON_VECTORS:-shared/vectors}
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; } > "$OUT/device.txt" 2>&1
$B/parthenon detect > "$OUT/detect.txt" 2>&1
$B/parthenon detect --json > "$OUT/detect.json" 2>&1
PARTHENON_GPU_CORPUS=5000 $B/gpu_cuda_agreement --nocapture > "$OUT/agreement.txt" 2>&1
echo "agreement rc=$?" >> "$OUT/agreement.txt"
# The test skips (and passes) when CUDA cannot start; on the GPU machine that is a failure.
grep -q "^skip" "$OUT/agreement.txt" && echo "CUDA AGREEMENT SKIPPED: CUDA did not start (see detect.txt)" | tee -a "$OUT/agreement.txt"
# NVIDIA's OpenCL, where the machine has an ICD for it (the test says "skip" otherwise).
PARTHENON_GPU_CORPUS=2000 $B/gpu_opencl_agreement --nocapture > "$OUT/agreement-opencl.txt" 2>&1
echo "agreement rc=$?" >> "$OUT/agreement-opencl.txt"
backends="cuda cpu auto"
# OpenCL figures only on a GPU device (not a CPU implementation such as PoCL).
grep -q "on OpenCL gpu" "$OUT/agreement-opencl.txt" && backends="$backends opencl"
for backend in $backends; do
  $B/parthenon bench verify --backend $backend --sizes 64,1024,4096,16384,65536,1048576 \
    > "$OUT/bench-verify-$backend.txt" 2>&1
done
tail -n 3 "$OUT"/*.txt
