#!/bin/bash
# One device call: NVRTC discovery, detection, CUDA verdict agreement (conformance vectors
# included), and the GPU/CPU verification figures. After scripts/device_build.sh ran here:
#   run(command="bash scripts/device_run.sh", carry=[".device-bin"], timeout_s=600)
# Writes at most 7 files under $OUT (default ./device-out); the device tool returns at most 8:
#   summary.txt     REV, GPU, glibc, NVRTC candidates and choice, detection, each step's status
#                   and time, verdicts (PASSED / FAILED / SKIPPED / VECTORS MISSING), crossover
#                   cache, AUTO >= CPU per point
#   detect.json     parthenon detect --json
#   agreement.txt   gpu_cuda_agreement --nocapture (vectors, corpus, chunks, order, split)
#   bench-cuda.txt  bench --backend cuda, then the register-cap variant
#   bench-auto.txt  bench --backend auto --json with RUST_LOG=info (calibration, crossover JSON);
#                   sizes up to 4,096 best of 10 runs, larger ones best of 2
#   bench-cpu.txt   bench --backend cpu --json, the same runs (summary.txt compares auto with it,
#                   point by point)
#   opencl.txt      gpu_opencl_agreement on NVIDIA's OpenCL, when the image has an ICD
# The whole script stays inside BUDGET seconds (default 540): every step has its own limit,
# cut to what is left, so a step that hangs cannot eat the call, and a step that no longer
# fits is skipped and says so. Most important first. Exits 1 (after every step has run) when
# any step failed, timed out or was skipped, the build is stale, NVRTC or the vectors are
# missing, the CUDA agreement did not pass, or auto fell below cpu: the device tool's rc says
# whether the run is a result.
set -uo pipefail
BUDGET=${BUDGET:-540}
OUT=${OUT:-device-out}
mkdir -p "$OUT"
B=.device-bin
SUM="$OUT/summary.txt"
: >"$SUM"
say() { echo "$*" | tee -a "$SUM"; }
fail=0

say "== device_run.sh $(date -u +%Y-%m-%dT%H:%M:%SZ), budget ${BUDGET}s"
if [ -f "$B/REV" ]; then
  # The commit, build and binary digests here; the build's full `git status` at the end.
  grep -v -E '^( M|M |MM|A |\?\?|D | D) ' "$B/REV" | sed 's/^/REV | /' >>"$SUM"
  say "built: $(head -1 "$B/REV"); $(grep -m1 -E '^(DIRTY|clean)' "$B/REV")"
  here=$(git rev-parse HEAD 2>/dev/null) && say "working tree here: commit $here"
  # The sources the binaries were built from against the sources carried here: a stale
  # .device-bin would otherwise test old code without a word.
  built=$(sed -n 's/^sources sha256 //p' "$B/REV")
  now=$(bash scripts/sources_digest.sh 2>/dev/null || echo unknown)
  if [ -n "$built" ] && [ "$built" = "$now" ]; then
    say "sources: the binaries were built from the sources carried here ($now)"
  else
    fail=1
    say "STALE BUILD: binaries built from sources ${built:-unknown}, carried sources are $now: rerun scripts/device_build.sh"
  fi
else
  fail=1
  say "REV MISSING: $B/REV not carried (run scripts/device_build.sh and carry .device-bin)"
fi
for f in parthenon gpu_cuda_agreement gpu_opencl_agreement; do
  [ -x "$B/$f" ] || { fail=1; say "BINARY MISSING: $B/$f"; }
done
timeout 15 nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv >>"$SUM" 2>&1 ||
  say "nvidia-smi failed (rc=$?)"
# The binaries are built on a machine with a newer glibc and need GLIBC_2.34.
glibc=$(ldd --version 2>&1 | head -1)
say "glibc: ${glibc:-unknown (ldd --version printed nothing)} (the binaries need GLIBC_2.34)"
glibc_version=$(printf '%s\n' "$glibc" | grep -o '[0-9]\+\.[0-9]\+$')
if [ -n "$glibc_version" ] && [ "$(printf '%s\n%s\n' "$glibc_version" 2.34 | sort -V | head -1)" != 2.34 ]; then
  fail=1
  say "GLIBC TOO OLD: $glibc_version < 2.34, the binaries cannot start here"
fi

# --- NVRTC. cudarc (built against CUDA 12.8) dlopens libnvrtc.so, libnvrtc.so.12, .so.11, ...,
# never libnvrtc.so.13: a CUDA 13 NVRTC (a toolkit under /usr/local/cuda*, or pip's
# nvidia-cuda-nvrtc in a venv, nvidia/cu13/lib) is reached through a link named libnvrtc.so in
# .device-lib, first on LD_LIBRARY_PATH; the library's own folder follows, so NVRTC finds its
# libnvrtc-builtins beside it.
cands=()
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/*/lib /usr/local/cuda-*/lib64 /usr/local/cuda-*/targets/*/lib \
  /opt/*/.venv/lib/python3*/site-packages/nvidia/cu1[0-9]/lib /opt/*/.venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib \
  /usr/local/lib/python3*/dist-packages/nvidia/cu1[0-9]/lib /usr/local/lib/python3*/dist-packages/nvidia/cuda_nvrtc/lib \
  /usr/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib /usr/lib/x86_64-linux-gnu; do
  for f in "$d"/libnvrtc.so "$d"/libnvrtc.so.[0-9]*; do
    [ -e "$f" ] && cands+=("$f")
  done
done
while IFS= read -r f; do cands+=("$f"); done < <(
  timeout 20 find /usr/local /opt /usr/lib -name 'libnvrtc.so*' ! -name '*builtins*' ! -name '*.alt.*' 2>/dev/null)
# A newer NVRTC than the driver emits code the driver refuses: candidates whose major version is
# above the driver's CUDA version are passed over.
driver_cuda=$(timeout 15 nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9]*' | grep -o '[0-9]*$' | head -1)
say "driver CUDA version: ${driver_cuda:-unknown}"
nvrtc=""
best=""
declare -A seen=()
for f in "${cands[@]}"; do
  real=$(readlink -f "$f") || continue
  [ -f "$real" ] || continue
  [ -n "${seen[$real]:-}" ] && continue
  seen[$real]=1
  dir=$(dirname "$real")
  builtins=$(ls "$dir"/libnvrtc-builtins.so* 2>/dev/null | head -1)
  say "nvrtc candidate: $f -> $real (builtins: ${builtins:-NONE beside it})"
  [ -n "$builtins" ] || continue
  # The newest version wins (version sort of the real file names, libnvrtc.so.13.0.48 > .12).
  version=$(basename "$real" | sed 's/^libnvrtc\.so\.\{0,1\}//')
  major=${version%%.*}
  if [ -n "$driver_cuda" ] && [ -n "$major" ] && [ "$major" -gt "$driver_cuda" ] 2>/dev/null; then
    say "  passed over: NVRTC $version is newer than the driver's CUDA $driver_cuda"
    continue
  fi
  if [ -z "$nvrtc" ] || [ "$(printf '%s\n%s\n' "$best" "$version" | sort -V | tail -1)" = "$version" ]; then
    nvrtc=$real
    best=$version
  fi
done
mkdir -p .device-lib
rm -f .device-lib/libnvrtc.so
if [ -n "$nvrtc" ]; then
  ln -s "$nvrtc" .device-lib/libnvrtc.so
  export LD_LIBRARY_PATH="$PWD/.device-lib:$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "nvrtc chosen: $nvrtc (linked as .device-lib/libnvrtc.so)"
else
  fail=1
  say "NVRTC NOT FOUND: the CUDA kernels cannot be compiled (every candidate is listed above)"
fi
# The driver's libcuda.so.1 is normally in the loader's cache; where it is not, its folder.
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [ -e "$d/libcuda.so.1" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d" && say "libcuda.so.1 in $d"
  done
fi
say "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
ldconfig -p 2>/dev/null | grep -E 'libcuda\.so|libnvrtc|libOpenCL' | sed 's/^/ldconfig | /' >>"$SUM"
ls /etc/OpenCL/vendors 2>/dev/null | sed 's/^/OpenCL ICD | /' >>"$SUM"

# --- Vectors: carried in .device-bin/vectors (../shared does not travel).
export PARTHENON_VECTORS=${PARTHENON_VECTORS:-$PWD/$B/vectors}
if [ -d "$PARTHENON_VECTORS/bip340" ]; then
  say "vectors: $PARTHENON_VECTORS ($(find "$PARTHENON_VECTORS" -type f | wc -l) files)"
else
  fail=1
  say "VECTORS MISSING at $PARTHENON_VECTORS: the CUDA conformance vectors will not run"
fi
# The compiled kernels (src/sigverify/gpu/kernel_cache.rs) and the crossover are cached here:
# the first process compiles the kernels, the later ones load the CUBIN.
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$PWD/.device-cache}

# step LIMIT FILE TITLE COMMAND...: runs COMMAND (output appended to $OUT/FILE) under LIMIT
# seconds, cut to what is left of the budget; its status and time go to the summary.
step() {
  local limit=$1 file=$2 title=$3
  shift 3
  local left=$((BUDGET - SECONDS - 10))
  if [ "$left" -lt 15 ]; then
    fail=1
    say "== $title: SKIPPED (${left}s left of the ${BUDGET}s budget)"
    return 99
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  echo "== $title: $* (limit ${limit}s)" >>"$OUT/$file"
  timeout -k 5 "$limit" "$@" >>"$OUT/$file" 2>&1
  local rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    echo "TIMED OUT after ${limit}s" >>"$OUT/$file"
  fi
  echo "rc=$rc after $((SECONDS - t0))s" >>"$OUT/$file"
  [ $rc -eq 0 ] || fail=1
  say "== $title: rc=$rc in $((SECONDS - t0))s (limit ${limit}s) -> $file"
  return $rc
}

P=$B/parthenon
step 15 summary.txt "detect" "$P" detect
# detect.json holds the JSON alone (its status goes to the summary).
t0=$SECONDS
timeout -k 5 15 "$P" detect --json >"$OUT/detect.json" 2>>"$SUM"
rc=$?
[ $rc -eq 0 ] || fail=1
say "== detect --json: rc=$rc in $((SECONDS - t0))s -> detect.json"

# The agreement test compiles the kernels first (NVRTC, CUBIN for the device: ~30-45 s).
step 170 agreement.txt "CUDA agreement" env PARTHENON_GPU_CORPUS=5000 "$B/gpu_cuda_agreement" --nocapture
A="$OUT/agreement.txt"
# The tests print exactly this when CUDA cannot start; on the GPU machine that is a failure.
if grep -q "skip: no CUDA device" "$A"; then
  fail=1
  say "CUDA AGREEMENT SKIPPED: no CUDA device: $(grep -m1 -o 'skip: no CUDA device.*' "$A")"
elif ! grep -q "^test result: ok" "$A"; then
  fail=1
  say "CUDA AGREEMENT FAILED (see agreement.txt): $(grep -m1 '^test result' "$A")"
elif grep -q "skip: conformance vectors not found" "$A"; then
  fail=1
  say "VECTORS MISSING: $(grep -m1 -o 'skip: conformance vectors not found.*' "$A")"
  say "CUDA AGREEMENT PASSED WITHOUT THE VECTORS: $(grep -m1 '^test result' "$A")"
else
  say "CUDA AGREEMENT PASSED (vectors included): $(grep -m1 '^test result' "$A")"
fi
grep -m3 -E "on CUDA: |kernels: " "$A" | sed 's/^/agreement | /' >>"$SUM"

# 4096: the latency target (4,096 signatures end to end). Small batches take milliseconds, so
# their figures are the best of 10 runs (2 would compare two noisy millisecond timings).
small=64,1024,4096
large=16384,65536,1048576
sizes=$small,$large
step 80 bench-cuda.txt "bench cuda" "$P" bench verify --backend cuda --sizes $sizes --schemes ed25519,bip340,mixed --repeat 2
# Calibration shows at info: the crossover per rules, and the split it gives. auto and cpu as
# JSON lines, compared below point by point.
step 40 bench-auto.txt "bench auto (small, best of 10)" env RUST_LOG=info "$P" bench verify --backend auto \
  --sizes $small --schemes ed25519,bip340,mixed --repeat 10 --json
step 80 bench-auto.txt "bench auto" env RUST_LOG=info "$P" bench verify --backend auto --sizes $large \
  --schemes ed25519,bip340,mixed --repeat 2 --json
step 30 bench-cpu.txt "bench cpu (small, best of 10)" "$P" bench verify --backend cpu --sizes $small \
  --schemes ed25519,bip340,mixed --repeat 10 --json
step 60 bench-cpu.txt "bench cpu" "$P" bench verify --backend cpu --sizes $large --schemes ed25519,bip340,mixed \
  --repeat 2 --json

# auto >= cpu at every point (issue 5): "yes", "within N % (noise)", or "NO" (a failure). Below
# the crossover's min_device_batch auto's plan is the CPU: the very call `bench cpu` times, so
# any difference there is timing noise, and the tolerance is wider (15 %, said so on the line);
# where auto's plan uses the device, 5 %. The crossover is the one auto logged (ANSI colours
# stripped); PARTHENON_GPU_CROSSOVER overrides it, as in the engine.
min_device=${PARTHENON_GPU_CROSSOVER:-$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/bench-auto.txt" 2>/dev/null |
  grep "verification crossover" | grep -o 'min_device_batch=[0-9]*' | head -1 | cut -d= -f2)}
say "auto's crossover: min_device_batch=${min_device:-unknown} (smaller batches are verified on the CPU)"
rate() { # FILE SCHEME SIZE: the point's end-to-end signatures per second
  grep -F "\"scheme\":\"$2\"" "$1" | grep -F "\"size\":$3," |
    sed -n 's/.*"end_to_end_per_second":\([0-9.eE+-]*\).*/\1/p' | head -1
}
for s in ed25519 bip340 mixed; do
  for n in ${sizes//,/ }; do
    a=$(rate "$OUT/bench-auto.txt" "$s" "$n")
    c=$(rate "$OUT/bench-cpu.txt" "$s" "$n")
    if [ -z "$a" ] || [ -z "$c" ]; then
      fail=1
      say "AUTO vs CPU $s $n: MISSING (auto ${a:-none}, cpu ${c:-none})"
      continue
    fi
    if [ -n "$min_device" ] && awk -v n="$n" -v m="$min_device" 'BEGIN { exit !(n < m) }'; then
      plan="CPU plan: the same CPU call on both sides"
      tolerance=0.85
    elif [ -n "$min_device" ]; then
      plan="device plan"
      tolerance=0.95
    else
      plan="plan unknown: no crossover logged"
      tolerance=0.95
    fi
    verdict=$(awk -v a="$a" -v c="$c" -v t="$tolerance" 'BEGIN { r = a / c; v = (r >= 1) ? "yes" : (r >= t) ? sprintf("within %.0f %% (noise)", (1 - t) * 100) : "NO"; printf "%s, %.2fx", v, r }')
    case $verdict in NO*) fail=1 ;; esac
    say "AUTO >= CPU $s $n ($plan): $verdict (auto $a, cpu $c sig/s end to end)"
  done
done
# The register cap: at 168 registers sig_verify fits three blocks per SM instead of two, with a
# few spills (src/sigverify/gpu/cuda.rs, MAXRREG_ENV); another NVRTC compile first.
step 90 bench-cuda.txt "bench cuda maxrregcount=168" env PARTHENON_CUDA_MAXRREG=168 "$P" bench verify \
  --backend cuda --sizes 65536,1048576 --repeat 2
# NVIDIA's OpenCL, where the image has an ICD for it (the test says "skip" otherwise).
step 60 opencl.txt "OpenCL agreement" env PARTHENON_GPU_CORPUS=1000 "$B/gpu_opencl_agreement" --nocapture

{
  echo "== crossover cache ($XDG_CACHE_HOME/parthenon)"
  ls -la "$XDG_CACHE_HOME/parthenon" 2>&1
  for f in "$XDG_CACHE_HOME"/parthenon/verify-crossover-*.json; do
    [ -e "$f" ] && echo "-- $f" && cat "$f"
  done
} | tee -a "$OUT/bench-auto.txt" >>"$SUM"
grep -h "verification crossover\|calibrating" "$OUT/bench-auto.txt" | sed 's/^/auto | /' >>"$SUM"
for f in "$OUT"/*.txt; do
  [ "$f" = "$SUM" ] && continue
  echo "---- tail of $(basename "$f")" >>"$SUM"
  tail -n 8 "$f" >>"$SUM"
done
[ -f "$B/REV" ] && sed 's/^/REV | /' "$B/REV" >>"$SUM"
if [ "$fail" != 0 ]; then
  say "== DEVICE RUN FAILED (see the lines in capitals above) in ${SECONDS}s"
  exit 1
fi
say "== done in ${SECONDS}s, every step passed"
