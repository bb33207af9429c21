#!/usr/bin/env python3
"""Side by side, per row, the benchmark CSVs examples/ab_bench.sh wrote:

    python3 examples/ab_compare.py OUT_DIR

For each benchmark (bench_glue: model, tokens, kernel; bench_gemm: experts, m,
n, k, layout, dtype) it prints the microseconds of every round of the
baseline and the new library, then new / baseline of the best of each, and
marks the rows whose change exceeds both 1% and the spread between rounds of
the same library (`faster`, `slower`); the rest are within noise. The copy
rate each run measured comes first: percentages of it move with it, times
do not.
"""
import csv
import glob
import os
import re
import sys

MIN_NOISE = 0.01  # same-library reruns of one device run differ by up to ~1% (NOTES.md)
KEYS = {"glue": ("model", "tokens", "kernel"),
        "gemm": ("experts", "m", "n", "k", "layout", "dtype")}


def runs(out, bench, side):
    """{round: {key: us}} of one side of one benchmark."""
    found = {}
    for path in glob.glob(os.path.join(out, f"{bench}_{side}_*.csv")):
        round_ = int(re.search(r"_(\d+)\.csv$", path).group(1))
        with open(path) as f:
            found[round_] = {tuple(row[c] for c in KEYS[bench]): float(row["us"])
                             for row in csv.DictReader(f)}
    return found


def copy_rates(out, bench, side):
    rates = []
    for path in sorted(glob.glob(os.path.join(out, f"{bench}_{side}_*.log"))):
        with open(path) as f:
            m = re.search(r"copy: ([0-9.]+) GB/s", f.read())
        rates.append(m.group(1) if m else "?")
    return rates


def spread(times):
    return (max(times) - min(times)) / min(times) if len(times) > 1 else 0.0


def compare(out, bench):
    base, new = runs(out, bench, "baseline"), runs(out, bench, "new")
    if not base or not new:
        return False
    print(f"bench_{bench}: copy GB/s baseline {' '.join(copy_rates(out, bench, 'baseline'))}, "
          f"new {' '.join(copy_rates(out, bench, 'new'))}")
    print(f"{'row':44s} {'baseline us':>22s} {'new us':>22s} {'new/base':>8s}")
    for key in base[min(base)]:
        b = [base[r][key] for r in sorted(base) if key in base[r]]
        n = [new[r][key] for r in sorted(new) if key in new[r]]
        if not n:
            continue
        ratio = min(n) / min(b)
        noise = max(spread(b), spread(n), MIN_NOISE)
        mark = "faster" if ratio < 1 - noise else "slower" if ratio > 1 + noise else ""
        print(f"{' '.join(key)[:44]:44s} {' '.join(f'{t:.2f}' for t in b):>22s} "
              f"{' '.join(f'{t:.2f}' for t in n):>22s} {ratio:8.3f} {mark}")
    print()
    return True


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ab_compare.py OUT_DIR")
    if not any([compare(sys.argv[1], bench) for bench in KEYS]):
        sys.exit(f"ab_compare: no baseline and new CSVs in {sys.argv[1]}")


if __name__ == "__main__":
    main()
