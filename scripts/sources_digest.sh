#!/bin/bash
# Prints a digest (16 hex digits) of the sources the device binaries are built from, as they are
# in the working tree: scripts/device_build.sh records it before building, scripts/device_run.sh
# recomputes it on the device machine and says STALE BUILD when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
find src kernels tests ffi Cargo.toml Cargo.lock build.rs .cargo/config.toml -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
  sha256sum | cut -c1-16
