#!/usr/bin/env bash
# Builds the libFuzzer targets into build-fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined, straight from the sources each needs)
# and runs each for SECONDS (default 60). Fails on any crash, leak, sanitizer
# report, timeout (-timeout=10 s per input) or out-of-memory (-rss_limit_mb);
# the input that did it is left in build-fuzz/artifacts/.
#   tests/fuzz/run_fuzzers.sh [SECONDS] [TARGET...]   targets: template model archive
# Seeds: tests/fuzz/corpus/<target>/ (checked in: template, model), the presets
# of templates/models for model, and, for
# archive, small archives written at run time by make_archive_seeds; tests/fuzz/<target>.dict
# gives each fuzzer the tokens of its format. What a run discovers
# accumulates in build-fuzz/corpus/<target>/ and is reused by the next run.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(template model archive)
OUT=build-fuzz
PACKAGES=(clang libclang-rt-14-dev liblua5.4-dev pkg-config)

die() { echo "run_fuzzers: $*" >&2; exit 1; }

# Flags of every object: undefined behaviour must abort, so that libFuzzer
# records the input (UBSan only prints by default).
CFLAGS=(-std=gnu11 -g -O1 -Wall -Wextra -Werror -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -Iinclude -Iruntime -Igen)

build() {
  mkdir -p "$OUT"
  local lua_cflags lua_libs
  lua_cflags=$(pkg-config --cflags lua5.4)
  lua_libs=$(pkg-config --libs lua5.4)
  # The embedded template set, as meson generates it (presets included).
  clang -O1 -o "$OUT/embed_templates" gen/embed_templates.c
  "$OUT/embed_templates" "$OUT/templates_embedded.c" templates/*.cu templates/*.cuh \
    templates/models/*.lua
  local store=(gen/template_store.c gen/lua_budget.c runtime/error.c "$OUT/templates_embedded.c")
  # shellcheck disable=SC2086 # pkg-config output is a list of flags
  clang "${CFLAGS[@]}" $lua_cflags -o "$OUT/fuzz_template" tests/fuzz/fuzz_template.c \
    gen/template.c "${store[@]}" $lua_libs -lm
  # shellcheck disable=SC2086
  clang "${CFLAGS[@]}" $lua_cflags -o "$OUT/fuzz_model" tests/fuzz/fuzz_model.c gen/model.c \
    "${store[@]}" $lua_libs -lm
  clang "${CFLAGS[@]}" -o "$OUT/fuzz_archive" tests/fuzz/fuzz_archive.c runtime/archive.c \
    runtime/sha256.c runtime/error.c
  # The seed writer is an ordinary program: no libFuzzer main.
  clang -std=gnu11 -g -O1 -Wall -Wextra -Werror -fsanitize=address,undefined -Iinclude \
    -Iruntime -Igen -o "$OUT/make_archive_seeds" tests/fuzz/make_archive_seeds.c \
    gen/archive_writer.c runtime/sha256.c runtime/error.c
}

run_one() {
  local target=$1 seeds=()
  mkdir -p "$OUT/corpus/$target" "$OUT/artifacts"
  [ -d "tests/fuzz/corpus/$target" ] && seeds+=("tests/fuzz/corpus/$target")
  [ "$target" = model ] && seeds+=(templates/models) # the presets are seeds as they stand
  if [ "$target" = archive ]; then
    rm -rf "$OUT/seeds/archive" && mkdir -p "$OUT/seeds/archive"
    "$OUT/make_archive_seeds" "$OUT/seeds/archive"
    seeds+=("$OUT/seeds/archive")
  fi
  echo "== fuzz_$target for ${SECONDS_EACH}s"
  # The first corpus folder receives new inputs; the checked-in seeds stay as they are.
  "$OUT/fuzz_$target" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$target-" -dict="tests/fuzz/$target.dict" \
    "$OUT/corpus/$target" "${seeds[@]}" 2>"$OUT/fuzz_$target.log" ||
    { tail -n 60 "$OUT/fuzz_$target.log" >&2; die "fuzz_$target failed (log: $OUT/fuzz_$target.log)"; }
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' \
    "$OUT/fuzz_$target.log" || true
}

tests/install_packages.sh "${PACKAGES[@]}"
build
for t in "${TARGETS[@]}"; do
  case "$t" in
    template|model|archive) run_one "$t" ;;
    *) die "unknown target '$t' (template, model, archive)" ;;
  esac
done
echo "run_fuzzers: ${#TARGETS[@]} targets ran ${SECONDS_EACH}s each with no finding"
echo "fuzz: ${#TARGETS[@]} passed, 0 failed"
