#!/bin/bash
# One device call: detection, CUDA verdict agreement, and the GPU/CPU verification figures.
# Run from the repository root on the GPU machine after scripts/device_build.sh ran here:
#   run(command="bash scripts/device_run.sh", carry=[".device-bin"])
# Writes everything under $OUT (default ./device-out). Every step has its own time limit, so one
# that hangs cannot eat the call's whole budget; a step that ran out says so in its file.
set -uo pipefail
OUT=${OUT:-device-out}
mkdir -p "$OUT"
B=.device-bin

# The driver and NVRTC live with the CUDA installation, which may be a toolkit under
# /usr/local/cuda*, the distribution's packages, or pip's nvidia-cuda-nvrtc wheel. cudarc looks
# for libnvrtc.so, .so.12, .so.11, ...: a toolkit that ships only libnvrtc.so.13 (say) is found
# through a link named libnvrtc.so in .device-lib, with the library's own directory on the path
# too (NVRTC loads its libnvrtc-builtins from there).
mkdir -p .device-lib
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 \
  /usr/local/cuda-*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu \
  /usr/local/lib/python3*/dist-packages/nvidia/cuda_nvrtc/lib /usr/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
nvrtc=""
IFS=: read -ra dirs <<< "${LD_LIBRARY_PATH:-}"
for d in "${dirs[@]}"; do
  for f in "$d"/libnvrtc.so "$d"/libnvrtc.so.[0-9]*; do
    [ -e "$f" ] && case "$f" in *builtins*) ;; *) nvrtc=$f ;; esac
  done
done
if [ -n "$nvrtc" ]; then
  ln -sf "$(readlink -f "$nvrtc")" .device-lib/libnvrtc.so
  export LD_LIBRARY_PATH="$PWD/.device-lib:$(dirname "$(readlink -f "$nvrtc")"):$LD_LIBRARY_PATH"
fi
export PARTHENON_VECTORS=${PARTHENON_VECTORS:-shared/vectors}
# The compiled kernels are cached here (src/sigverify/gpu/kernel_cache.rs): the first process
# compiles them, the later ones load the CUBIN.
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$PWD/.device-cache}
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
  echo "libnvrtc: ${nvrtc:-not found}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
} > "$OUT/device.txt" 2>&1

# step SECONDS FILE COMMAND...: runs COMMAND with its output in $OUT/FILE, then its exit status.
step() {
  local limit=$1 file=$2
  shift 2
  timeout "$limit" "$@" > "$OUT/$file" 2>&1
  local rc=$?
  [ $rc -eq 124 ] && echo "TIMED OUT after ${limit}s" >> "$OUT/$file"
  echo "rc=$rc" >> "$OUT/$file"
}

# Most important first: the device tool's call limit (600 s) may cut the tail short, and what
# was written by then still comes back.
step 30 detect.txt $B/parthenon detect
step 30 detect.json $B/parthenon detect --json
PARTHENON_GPU_CORPUS=5000 step 150 agreement.txt $B/gpu_cuda_agreement --nocapture
# The test skips (and passes) when CUDA cannot start; on the GPU machine that is a failure.
grep -q "^skip" "$OUT/agreement.txt" && echo "CUDA AGREEMENT SKIPPED: CUDA did not start (see detect.txt)" | tee -a "$OUT/agreement.txt"
sizes=64,1024,4096,16384,65536,1048576
step 120 bench-verify-cuda.txt $B/parthenon bench verify --backend cuda --sizes $sizes
step 60 bench-verify-cpu.txt $B/parthenon bench verify --backend cpu --sizes $sizes
step 120 bench-verify-auto.txt $B/parthenon bench verify --backend auto --sizes $sizes
# The register cap: at 168 registers sig_verify fits three blocks per SM instead of two, with a
# few spills (src/sigverify/gpu/cuda.rs, MAXRREG_ENV). Compare with bench-verify-cuda.txt.
PARTHENON_CUDA_MAXRREG=168 step 150 bench-verify-cuda-maxrreg168.txt \
  $B/parthenon bench verify --backend cuda --sizes 4096,65536,1048576
# NVIDIA's OpenCL, where the machine has an ICD for it (the test says "skip" otherwise); its
# figures only on a GPU device (not a CPU implementation such as PoCL).
PARTHENON_GPU_CORPUS=2000 step 60 agreement-opencl.txt $B/gpu_opencl_agreement --nocapture
if grep -q "on OpenCL gpu" "$OUT/agreement-opencl.txt"; then
  step 60 bench-verify-opencl.txt $B/parthenon bench verify --backend opencl --sizes $sizes
fi
tail -n 4 "$OUT"/*.txt
