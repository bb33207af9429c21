#!/usr/bin/env bash
# Copies what a device run needs into .stage/ (binaries, libraries, the built-in
# archive, scripts) and the non-system shared libraries into .devlibs/, fresh
# each time so no stale copy of libmoeforge shadows the new one. Then:
#   run with carry [".stage", ".devlibs"]:
#   cd .stage && LD_LIBRARY_PATH=$PWD/build:$PWD/../.devlibs tests/run_gpu_suite.sh build
# With BASELINE_LIB (another build's libmoeforge.so), .stage/baseline/ gets it
# xz-compressed, for examples/ab_bench.sh build baseline OUT on the device.
#   tests/stage_for_device.sh [BUILD_DIR] [BASELINE_LIB]
set -euo pipefail
baseline=${2:+$(realpath "$2")}
cd "$(dirname "$0")/.."
build=${1:-build}
rm -rf .stage .devlibs
mkdir -p .stage/build/tests .stage/build/examples .stage/tests .stage/examples
cp -a "$build"/libmoeforge*.so* "$build"/builtin.mfa "$build"/moeforge .stage/build/
cp -a "$build"/tests/test_gpu_* "$build"/tests/test_warmup .stage/build/tests/ 2>/dev/null || true
rm -rf .stage/build/*.p .stage/build/tests/*.p # object folders the globs caught (20 MB of a 64 MB carry)
find "$build"/examples -maxdepth 1 -type f -perm -u+x -exec cp -a {} .stage/build/examples/ \;
cp tests/run_gpu_suite.sh .stage/tests/
cp examples/*.py examples/*.sh .stage/examples/ 2>/dev/null || true
if [ -n "$baseline" ]; then
  mkdir -p .stage/baseline
  xz -T0 -3 -c "$baseline" > .stage/baseline/libmoeforge.so.0.xz
fi
../shared/tools/pack-device-libs .devlibs .stage/build >/dev/null
rm -f .devlibs/libmoeforge*
du -sh .stage .devlibs
