#!/bin/sh
# A program linked only against the runtime must not pull in Lua, NVRTC or
# libcuda (the driver is dlopen'ed), and must start without a GPU.
set -eu
prog=$1
deps=$(ldd "$prog")
echo "$deps"
if echo "$deps" | grep -E 'liblua|libnvrtc|libcuda' >/dev/null; then
  echo "FAIL: $prog links Lua, NVRTC or libcuda" >&2
  exit 1
fi
out=$("$prog" 2>&1) || true
echo "$out"
echo "$out" | grep -E 'no CUDA driver|no CUDA device|device 0:' >/dev/null ||
  { echo "FAIL: $prog did not report its device status" >&2; exit 1; }
echo "1 passed, 0 failed"
