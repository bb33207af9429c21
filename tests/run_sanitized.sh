#!/usr/bin/env bash
# CI's sanitizer and valgrind stages (.ci/run calls this after ./dev.sh test):
#   1. build-asan/: the whole project built with -Db_sanitize=address,undefined
#      (the build-time kernel set is compiled by a sanitized mf_buildgen), then
#      the cpu suite there. Fails on any test failure and on any ASan, LSan or
#      UBSan report, including one from a child process whose exit status a
#      test does not look at: the test logs must hold no report.
#   2. valgrind (memcheck, leaks included) over the plain build's CLI: render
#      of every spec of templates/default_set.txt, compile of two, and the
#      model and archive readers through `moeforge list`.
#   tests/run_sanitized.sh [asan|valgrind]...     (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
ASAN_BUILD=build-asan
LOGS=$ASAN_BUILD/meson-logs
# How ASan and LSan ("==PID==ERROR: ...") and UBSan ("file:line:col: runtime
# error: ...") start a report.
REPORT_PATTERN='^==[0-9]+==ERROR: |^[^ ]+:[0-9]+:[0-9]+: runtime error: '
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(asan valgrind)

die() { echo "run_sanitized: $*" >&2; exit 1; }

export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$CUDA_HOME/lib64"

# Names of the cpu tests, as `meson test` takes them.
cpu_tests() {
  meson test -C "$ASAN_BUILD" --suite cpu --list 2>/dev/null | sed -n 's|^[^ ]*:cpu / ||p'
}

# Runs meson test (log name $1) with a bound on wall time: a test that hangs
# fails CI instead of eating its budget.
run_meson_tests() {
  local log=$1
  shift
  timeout --kill-after=30 1500 meson test -C "$ASAN_BUILD" --print-errorlogs \
    --logbase "sanitized-$log" "$@"
}

asan_stage() {
  [ -f "$ASAN_BUILD/build.ninja" ] ||
    meson setup "$ASAN_BUILD" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
  ninja -C "$ASAN_BUILD"
  rm -f "$LOGS"/sanitized-*
  export ASAN_OPTIONS=detect_leaks=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  # GCC's ASan allocator is not fork-safe: a compile child forked while another
  # warmup thread holds an allocator lock deadlocks in its first malloc. Every
  # warmup therefore forks from one thread here (the plain suite covers the
  # threaded pool).
  export MOEFORGE_WARMUP_MAX_THREADS=1
  local tests=() t
  mapfile -t tests < <(cpu_tests)
  [ ${#tests[@]} -gt 0 ] || die "no cpu test found in $ASAN_BUILD"
  local plain=()
  for t in "${tests[@]}"; do
    case "$t" in test_warmup|test_faults) ;; *) plain+=("$t") ;; esac
  done
  local failed=0
  run_meson_tests plain "${plain[@]}" || failed=1
  # These two assert the thread count they asked for, which the limit above
  # changes; they run in the plain suite.
  run_meson_tests warmup test_warmup --test-args="--filter=!(warmup/compiles_what_is_missing_then_only_hits|warmup/default_threads_are_the_online_cores)" ||
    failed=1
  # test_faults crashes a compile child with SIGSEGV on purpose and checks that
  # it died of that signal; ASan's SEGV handler would turn the death into a
  # report and exit 1. Its memory errors are still caught by instrumentation.
  ASAN_OPTIONS="$ASAN_OPTIONS:handle_segv=0" run_meson_tests faults test_faults || failed=1
  if grep -E -A30 "$REPORT_PATTERN" "$LOGS"/sanitized-*.txt >&2; then
    die "sanitizer reports above (logs: $LOGS/sanitized-*.txt)"
  fi
  [ $failed -eq 0 ] || die "cpu suite failed under ASan/UBSan"
  echo "asan: ${#tests[@]} passed, 0 failed"
}

valgrind_stage() {
  ./dev.sh build >/dev/null
  command -v valgrind >/dev/null || die "valgrind not installed (dev.sh installs it)"
  local vg=(valgrind -q --error-exitcode=1 --leak-check=full --num-callers=50
            --errors-for-leak-kinds=definite,indirect,possible
            --suppressions=tests/valgrind.supp)
  local specs=() runs=0 spec
  mapfile -t specs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' templates/default_set.txt)
  [ ${#specs[@]} -gt 0 ] || die "no spec in templates/default_set.txt"
  export MOEFORGE_CACHE=off
  for spec in "${specs[@]}"; do
    "${vg[@]}" build/moeforge render "$spec" >/dev/null || die "valgrind: render $spec"
    runs=$((runs + 1))
  done
  # Compiles are slow under valgrind (it follows the compile child, where
  # NVRTC runs): two small kernels, FP8 quantizing and gathering.
  for spec in "silu_mul:block=256,dtype=e4m3,layout=masked,unroll=1" \
              "combine:block=256,dtype=bf16,kchunk=1,unroll=4"; do
    "${vg[@]}" build/moeforge compile --ptx "$spec" >/dev/null || die "valgrind: compile $spec"
    runs=$((runs + 1))
  done
  local list_args
  for list_args in "--presets" "--preset deepseek-v3" "build/builtin.mfa"; do
    # shellcheck disable=SC2086 # each is one command line
    "${vg[@]}" build/moeforge list $list_args >/dev/null || die "valgrind: list $list_args"
    runs=$((runs + 1))
  done
  echo "valgrind: $runs passed, 0 failed"
}

for stage in "${STAGES[@]}"; do
  case "$stage" in
    asan) asan_stage ;;
    valgrind) valgrind_stage ;;
    *) die "unknown stage '$stage' (asan, valgrind)" ;;
  esac
done
