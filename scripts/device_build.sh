#!/bin/bash
# Builds what scripts/device_run.sh runs on a GPU machine (which has CUDA but no Rust toolchain)
# and copies it into .device-bin/ (git-ignored; name it in the device tool's `carry`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --features cuda,opencl
cargo test --release --features cuda,opencl --test gpu_cuda_agreement --test gpu_opencl_agreement --no-run 2>&1 |
  tee /tmp/device-build.log
mkdir -p .device-bin
cp target/release/parthenon .device-bin/
for t in gpu_cuda_agreement gpu_opencl_agreement; do
  test_bin=$(grep -o "target/release/deps/$t-[0-9a-f]*" /tmp/device-build.log | tail -1)
  cp "$test_bin" ".device-bin/$t"
done
# The device tool carries at most 64 MiB: drop the debug info.
strip .device-bin/parthenon .device-bin/gpu_cuda_agreement .device-bin/gpu_opencl_agreement
ls -la .device-bin
