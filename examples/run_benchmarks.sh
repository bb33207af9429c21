#!/usr/bin/env bash
# Every benchmark in one device run, logs and CSVs into DIR (default .):
#   examples/run_benchmarks.sh [BUILD_DIR] [DIR] [glue|gemm|layer|compare ...]
set -uo pipefail
build=${1:-build}
out=${2:-.}
shift 2 2>/dev/null || true
what=${*:-glue gemm layer compare}
export PYTHONUNBUFFERED=1
for w in $what; do
  case $w in
    glue) "$build"/examples/bench_glue --csv "$out/glue.csv" 2>&1 | tee "$out/glue.log" ;;
    gemm) python3 "$(dirname "$0")/peer_gemm.py" 2>&1 | tee "$out/peer_gemm.log"
          "$build"/examples/bench_gemm --csv "$out/gemm.csv" 2>&1 | tee "$out/gemm.log" ;;
    layer) "$build"/examples/bench_layer 2>&1 | tee "$out/layer.log" ;;
    compare) MOEFORGE_LIB="$build/libmoeforge.so.0" python3 "$(dirname "$0")/compare_torch.py" \
               2>&1 | tee "$out/compare.log" ;;
  esac
done
