#!/usr/bin/env bash
# One entry point for the README's commands:
#   ./dev.sh demo    build, list the built-in kernel set; with a GPU, run and time SiLU-and-mul
#   ./dev.sh test    build and run every suite (cpu always; gpu skips without a device)
#   ./dev.sh build   install what is missing, configure and build only
# Each installs the missing Debian packages first (idempotent) and finds the CUDA
# toolkit at $CUDA_HOME or /usr/local/cuda.
set -euo pipefail
cd "$(dirname "$0")"
BUILD=${BUILD:-build}
PACKAGES=(meson ninja-build pkg-config liblua5.4-dev libcriterion-dev gcc valgrind)

die() { echo "dev.sh: $*" >&2; exit 1; }

find_cuda() {
  export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
  [ -f "$CUDA_HOME/include/cuda.h" ] && [ -f "$CUDA_HOME/include/nvrtc.h" ] ||
    die "CUDA toolkit not found at $CUDA_HOME (need include/cuda.h and include/nvrtc.h); set CUDA_HOME"
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$CUDA_HOME/lib64"
}

build() {
  tests/install_packages.sh "${PACKAGES[@]}"
  find_cuda
  [ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
  ninja -C "$BUILD"
}

case "${1:-}" in
  build)
    build ;;
  demo)
    build
    echo "== built-in kernel set (compiled by NVRTC at build time, embedded in libmoeforge)"
    "$BUILD/moeforge" list
    "$BUILD/moeforge" version
    echo "== device"
    if "$BUILD/moeforge" device; then
      echo "== SiLU-and-mul: check against the CPU reference and timing"
      "$BUILD/examples/bench_silu_mul"
    else
      echo "(no GPU here: kernels were rendered and compiled, nothing was launched)"
    fi ;;
  test)
    build
    meson test -C "$BUILD" --suite cpu --suite gpu -v --print-errorlogs ;;
  *)
    sed -n '2,8p' "$0" >&2
    exit 2 ;;
esac
