#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for a while.
#   tests/fuzz.sh [SECONDS] [TARGET...]     default: 60 s each, every target
# New inputs go to a scratch copy of the seed corpus (build-fuzz/corpus/<name>),
# never into tests/fuzz/corpus. A crash stops the script with its reproducer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
bdir="$root/build-fuzz"
cmake -S "$root" -B "$bdir" -DCMAKE_C_COMPILER=clang -DWHT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$root"/tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cmake --build "$bdir" -j2 --target "${targets[@]}" >/dev/null
for t in "${targets[@]}"; do
    name=${t#fuzz_}
    work="$bdir/corpus/$name"
    mkdir -p "$work"
    cp -n "$root/tests/fuzz/corpus/$name/"* "$work/" 2>/dev/null || true
    echo "fuzz: $t for ${secs}s"
    (cd "$bdir" && "$bdir/tests/$t" -max_total_time="$secs" -max_len=65536 -print_final_stats=1 \
        "$work" 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|SUMMARY|Test unit written" ) || {
        echo "fuzz: $t FAILED (reproducer in $bdir)"; exit 1; }
done
