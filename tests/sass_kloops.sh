#!/usr/bin/env bash
# The k-loop of every Hopper GEMM config of the kernel set, from its SASS: a
# development check, run by hand before and after a change to
# templates/gemm_sm90.cu (diff the two outputs). ptxas moves the ring's
# barrier addresses and the wgmma descriptors out of uniform registers on
# small changes anywhere in the kernel, and that has cost 2-20% (NOTES.md,
# Hopper family); the PTX does not show it, the SASS does.
#   tests/sass_kloops.sh [BUILD_DIR] [TEMPLATE_DIR]
# Per config: instructions in the smallest loop holding a GMMA (the k-loop),
# and in it S2UR (shared window base rebuilt), R2UR (a value moved to a
# uniform register: before a GMMA, its descriptor), LDC (a parameter reread)
# and barrier waits on vector-register addresses (TRYWAIT [Rn+URZ]).
# Needs cuobjdump (not in the trimmed toolkit): `pip download --no-deps
# nvidia-cuda-cuobjdump`, unzip the wheel, put nvidia/cu13/bin on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
templates=${2:-$PWD/templates}
command -v cuobjdump > /dev/null || { echo "sass_kloops: cuobjdump not on PATH (see the header)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
grep '^gemm_sm90:' templates/default_set.txt |
  MOEFORGE_TEMPLATE_DIR=$templates xargs -P "$(nproc)" -n 4 "$build"/moeforge compile --out "$out" > "$out/list.txt"
for cubin in "$out"/*.cubin; do cuobjdump -sass "$cubin" > "${cubin%.cubin}.sass"; done
python3 - "$out" <<'PY'
import glob, os, re, sys
out = sys.argv[1]
spec_of = {}
for line in open(os.path.join(out, "list.txt")):
    words = line.split()
    if words:
        spec_of[words[-1]] = words[0]
rows = []
for path in glob.glob(os.path.join(out, "*.sass")):
    code = [(int(m.group(1), 16), m.group(2).strip()) for m in
            (re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);", line) for line in open(path)) if m]
    at = {address: i for i, (address, _) in enumerate(code)}
    loop = None
    for i, (address, text) in enumerate(code):
        branch = re.search(r"BRA (0x[0-9a-f]+)", text)
        target = int(branch.group(1), 16) if branch else None
        if target is not None and target < address and target in at:
            body = [t for _, t in code[at[target]:i + 1]]
            if any("GMMA" in t for t in body) and (loop is None or len(body) < len(loop)):
                loop = body
    count = lambda op: sum(op in t for t in loop)
    vector_waits = sum("TRYWAIT" in t and "+URZ]" in t for t in loop)
    spec = spec_of.get(os.path.basename(path)[:-5], path)
    rows.append(f"{spec:<80} {len(loop):4d} ins  S2UR {count('S2UR')}  R2UR {count('R2UR'):2d}"
                f"  LDC {count('LDC')}  TRYWAIT[R] {vector_waits}")
print("\n".join(sorted(rows)))
PY
