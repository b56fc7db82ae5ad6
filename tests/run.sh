#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root):
# installs what it needs, builds twice (normal with -Werror, and with
# AddressSanitizer + UndefinedBehaviorSanitizer), runs every unit, fuzz-corpus
# and integration test in both builds, then each fuzzer briefly.
#   tests/run.sh              everything
#   WHT_TEST_LABEL=unit tests/run.sh   only one ctest label (unit, fuzz, integration)
#   WHT_FUZZ_SECONDS=0 tests/run.sh    skip the short fuzzer runs
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/deploy/install-deps.sh" --test || exit 1

jobs=$(nproc 2>/dev/null || echo 2)
label=${WHT_TEST_LABEL:-}
passed=0
failed=0
failed_names=()
skip_log=$(mktemp)
trap 'rm -f "$skip_log"' EXIT

run_build() { # name, cmake args...
    local name=$1; shift
    local bdir="$root/build-$name"
    echo "=== build $name"
    mkdir -p "$bdir"
    if ! cmake -S "$root" -B "$bdir" "$@" >"$bdir/configure.log" 2>&1; then
        cat "$bdir/configure.log"; failed=$((failed + 1)); failed_names+=("build-$name"); return
    fi
    if ! cmake --build "$bdir" -j"$jobs" >"$bdir/build.log" 2>&1; then
        grep -E "error|warning" "$bdir/build.log" | head -50
        failed=$((failed + 1)); failed_names+=("build-$name"); return
    fi
    echo "=== test $name"
    local args=(--test-dir "$bdir" --output-on-failure --timeout 900)
    [ -n "$label" ] && args+=(-L "$label")
    : >"$bdir/skips.log"
    WHT_SKIP_LOG="$bdir/skips.log" ctest "${args[@]}" | tee "$bdir/ctest.log"
    sed "s|^|$name: |" "$bdir/skips.log" >>"$skip_log"
    local p f
    p=$(grep -cE "Test +#[0-9]+: .* Passed" "$bdir/ctest.log")
    f=$(grep -cE "Test +#[0-9]+: .*(\*\*\*|Failed|Not Run|Timeout)" "$bdir/ctest.log")
    passed=$((passed + p)); failed=$((failed + f))
    while read -r t; do failed_names+=("$name/$t"); done < <(
        grep -E "Test +#[0-9]+: .*(\*\*\*|Failed|Not Run|Timeout)" "$bdir/ctest.log" | awk '{print $4}')
}

run_build release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWHT_WERROR=ON
# slow checks (a browser, a Prometheus server) run once, in the release build
WHT_SLOW_CHECKS=0 \
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_build asan -DCMAKE_BUILD_TYPE=Debug -DWHT_SANITIZE=ON -DWHT_WERROR=ON

fuzz_secs=${WHT_FUZZ_SECONDS:-5}
if [ -z "$label" ] || [ "$label" = fuzz ]; then
    if [ "$fuzz_secs" != 0 ]; then
        if "$root/tests/fuzz.sh" "$fuzz_secs"; then passed=$((passed + 1)); else
            failed=$((failed + 1)); failed_names+=("fuzzers"); fi
    fi
fi

skipped=$(wc -l <"$skip_log")
if [ "$skipped" -gt 0 ]; then
    echo "skipped (each with its reason):"
    sed 's/^/  /' "$skip_log"
fi
[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
