#!/usr/bin/env bash
# Runs the GPU suite's binaries from a build folder, with no meson or ninja
# (the device machine gets binaries built elsewhere):
#   tests/run_gpu_suite.sh [BUILD_DIR] [--sanitize] [--racecheck]
# --sanitize runs each binary under compute-sanitizer memcheck as well
# (test_gpu_oom with --report-api-errors no: its cuMemAlloc failures are the
# out-of-memory it provokes on purpose, not memory errors).
# --racecheck runs each binary whose kernels use shared memory (all but
# test_gpu_oom) under compute-sanitizer racecheck as well, on its small cases
# (racecheck instruments every shared-memory access): the GEMM's every-config
# tests (all tile configs of both families), the layer's smallest token
# counts; RACECHECK_FILTER, when set, replaces these Criterion --filter patterns.
# Each sanitizer run ends with compute-sanitizer's summary line ("ERROR
# SUMMARY: ..." or "RACECHECK SUMMARY: ..."); the last line counts every run:
# "N passed, N failed".
set -uo pipefail
build=build sanitize=0 racecheck=0
for arg in "$@"; do
  case $arg in
    --sanitize) sanitize=1 ;;
    --racecheck) racecheck=1 ;;
    -*) echo "usage: $0 [BUILD_DIR] [--sanitize] [--racecheck]" >&2; exit 2 ;;
    *) build=$arg ;;
  esac
done
# The Criterion --filter pattern of a binary's racecheck run.
racecheck_filter() {
  if [ -n "${RACECHECK_FILTER:-}" ]; then echo "$RACECHECK_FILTER"; return; fi
  case $1 in
    test_gpu_gemm) echo 'gpu_gemm/every_*' ;;
    test_gpu_layer) echo 'gpu_layer/*_t[13]*' ;;
    *) echo '*' ;;
  esac
}
export MF_BUILTIN_ARCHIVE="$build/builtin.mfa"
passed=0 failed=0

# Runs one command and counts it.
count() {
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

for t in "$build"/tests/test_gpu_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  echo "== $t"
  count env MOEFORGE_LOG=error "$t" --verbose
  if [ "$sanitize" = 1 ]; then
    echo "== compute-sanitizer memcheck $t"
    api_errors=all
    [ "${t##*/}" = test_gpu_oom ] && api_errors=no
    count compute-sanitizer --tool memcheck --report-api-errors "$api_errors" --error-exitcode 99 \
      "$t" --jobs 1
  fi
  if [ "$racecheck" = 1 ] && [ "${t##*/}" != test_gpu_oom ]; then
    filter=$(racecheck_filter "${t##*/}")
    echo "== compute-sanitizer racecheck $t --filter '$filter'"
    count compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 99 \
      "$t" --jobs 1 --filter "$filter"
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
