#!/usr/bin/env bash
# Runs the GPU suite's binaries from a build folder, with no meson or ninja
# (the device machine gets binaries built elsewhere):
#   tests/run_gpu_suite.sh [BUILD_DIR] [--sanitize]
# --sanitize runs each binary under compute-sanitizer memcheck as well.
set -uo pipefail
build=${1:-build}
sanitize=${2:-}
passed=0 failed=0
for t in "$build"/tests/test_gpu_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  echo "== $t"
  if MF_BUILTIN_ARCHIVE="$build/builtin.mfa" MOEFORGE_LOG=error "$t" --verbose; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  if [ "$sanitize" = "--sanitize" ]; then
    echo "== compute-sanitizer memcheck $t"
    if MF_BUILTIN_ARCHIVE="$build/builtin.mfa" compute-sanitizer --tool memcheck --error-exitcode 99 "$t" --jobs 1; then
      passed=$((passed + 1)); else failed=$((failed + 1)); fi
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
