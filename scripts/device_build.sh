#!/bin/bash
# Builds what scripts/device_run.sh runs on a GPU machine (which has CUDA but no Rust toolchain and
# cannot reach ../shared) into .device-bin/ (git-ignored; name it in the device tool's `carry`):
#   parthenon, gpu_cuda_agreement, gpu_opencl_agreement   release binaries, stripped
#   vectors/                                               the conformance vectors ($PARTHENON_VECTORS,
#                                                          else ../shared/vectors)
#   REV                                                    the commit and working-tree state built
# The device tool carries at most 64 MiB (working tree and carried folders together): the script
# fails when .device-bin alone passes 48 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=.device-bin
git check-ignore -q "$bin" || { echo "$bin is not git-ignored: it must never be committed" >&2; exit 1; }
vectors=${PARTHENON_VECTORS:-$root/../shared/vectors}
[ -d "$vectors/bip340" ] || { echo "conformance vectors not found at $vectors (set PARTHENON_VECTORS)" >&2; exit 1; }

# Taken before building, so that an edit made while cargo runs makes the build stale, not new.
sources=$(bash scripts/sources_digest.sh)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Cargo names every executable it builds in its JSON messages (wherever CARGO_TARGET_DIR points).
cargo build --release --features cuda,opencl --message-format=json-render-diagnostics >"$log"
cargo test --release --features cuda,opencl --test gpu_cuda_agreement --test gpu_opencl_agreement --no-run \
  --message-format=json-render-diagnostics >>"$log"
executable() {
  python3 -c '
import json, sys
name = sys.argv[1]
found = [m["executable"] for m in map(json.loads, open(sys.argv[2]))
         if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == name]
print(found[-1] if found else "")' "$1" "$log"
}

[ -d "$bin" ] && chmod -R u+w "$bin"
rm -rf "$bin"
mkdir -p "$bin"
for name in parthenon gpu_cuda_agreement gpu_opencl_agreement; do
  exe=$(executable "$name")
  [ -n "$exe" ] && [ -x "$exe" ] || { echo "cargo built no executable named $name" >&2; exit 1; }
  cp "$exe" "$bin/$name"
done
# Drop the debug info: the carry limit.
strip "$bin/parthenon" "$bin/gpu_cuda_agreement" "$bin/gpu_opencl_agreement"
# The copy gets ordinary permissions (the shared folder may be read-only).
cp -r --no-preserve=mode "$vectors" "$bin/vectors"
{
  echo "commit $(git rev-parse HEAD)"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m) by $(cargo --version)"
  if [ -n "$(git status --short --untracked-files=no)" ]; then
    echo "DIRTY: built from uncommitted changes (git diff HEAD sha256 $(git diff HEAD | sha256sum | cut -c1-16))"
  else
    echo "clean: the build is exactly this commit"
  fi
  # device_run.sh recomputes this over the carried working tree and says STALE BUILD on a mismatch.
  echo "sources sha256 $sources"
  echo "git status --short:"
  git status --short
  echo "sha256:"
  (cd "$bin" && sha256sum parthenon gpu_cuda_agreement gpu_opencl_agreement)
} >"$bin/REV"

size=$(du -sb "$bin" | cut -f1)
tree=$(git ls-files -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1 || true)
ls -la "$bin"
echo "$bin: $((size / 1024)) KiB; tracked working tree: $((tree / 1024)) KiB; the device tool carries at most 65536 KiB in all"
if [ "$size" -gt $((48 << 20)) ]; then
  echo "$bin is over 48 MiB: too large to carry with the working tree" >&2
  exit 1
fi
