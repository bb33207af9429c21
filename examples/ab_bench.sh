#!/usr/bin/env bash
# A/B of two builds of libmoeforge in one device run: the same benchmark
# binaries, each run with the baseline library and with the new one in turn
# (rounds alternate, so clock and thermal drift fall on both sides), then a
# table of the two sides per row (examples/ab_compare.py).
#   examples/ab_bench.sh BUILD_DIR BASELINE_DIR OUT_DIR [ROUNDS] [glue|gemm]...
# BUILD_DIR: the new build (its binaries and libmoeforge.so.0); BASELINE_DIR:
# a folder with the baseline's libmoeforge.so.0 (or .so.0.xz, as
# tests/stage_for_device.sh BUILD BASELINE_LIB stages it). ROUNDS: 2 unless
# given; benchmarks: glue unless given. Writes BENCH_{baseline,new}_ROUND.csv
# and .log into OUT_DIR, and the table into OUT_DIR/ab.txt. The device tool
# returns few files: tar OUT_DIR.
set -uo pipefail
[ $# -ge 3 ] || { echo "usage: $0 BUILD_DIR BASELINE_DIR OUT_DIR [ROUNDS] [glue|gemm]..." >&2; exit 2; }
build=$(cd "$1" && pwd) baseline=$(cd "$2" && pwd) out=$3
rounds=${4:-2}
shift 4 2>/dev/null || shift $#
benches=${*:-glue}
mkdir -p "$out"
export MOEFORGE_CACHE=${MOEFORGE_CACHE:-off} # each side runs the kernels built into its library
if [ ! -e "$baseline/libmoeforge.so.0" ] && [ -e "$baseline/libmoeforge.so.0.xz" ]; then
  xz -dk "$baseline/libmoeforge.so.0.xz" || exit 1
fi
[ -e "$baseline/libmoeforge.so.0" ] || { echo "ab_bench: no libmoeforge.so.0 in $baseline" >&2; exit 2; }
[ -e "$build/libmoeforge.so.0" ] || { echo "ab_bench: no libmoeforge.so.0 in $build" >&2; exit 2; }
failed=0
for round in $(seq 1 "$rounds"); do
  for side in baseline new; do
    lib=$([ "$side" = baseline ] && echo "$baseline" || echo "$build")
    for bench in $benches; do
      name=$out/${bench}_${side}_$round
      echo "== round $round/$rounds, $side, bench_$bench" >&2
      if ! LD_LIBRARY_PATH="$lib:$build:${LD_LIBRARY_PATH:-}" "$build/examples/bench_$bench" \
             --csv "$name.csv" > "$name.log" 2>&1; then
        echo "ab_bench: bench_$bench failed with the $side library (see $name.log)" >&2
        failed=1
      fi
    done
  done
done
python3 "$(dirname "$0")/ab_compare.py" "$out" | tee "$out/ab.txt"
exit $failed
