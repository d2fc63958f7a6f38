#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 10) over the committed seed corpus.
#   fuzz/run.sh 6          the bounded run of ./build.sh test (5 targets × 6 s; default 10 s)
#   fuzz/run.sh 600        a longer campaign (10 minutes per target)
#   fuzz/run.sh 3600 tokenizer   one target
# Needs cargo-fuzz (installed here if missing). Stable Rust works: `-s none` (no sanitizer) and
# RUSTC_BOOTSTRAP=1 for the few unstable flags cargo-fuzz passes. New inputs go to
# target/fuzz-corpus/TARGET, crashes to fuzz/artifacts/TARGET; the committed corpus is read only.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf_header gguf_stream tokenizer chat_template config)
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
# FUZZ_BUILD=--dev (./build.sh test): an unoptimised build compiles in about half the time, which
# matters more than executions per second for a 10-second smoke run.
build="${FUZZ_BUILD:--O}"
cargo fuzz build -s none $build
for t in "${targets[@]}"; do
    work="target/fuzz-corpus/$t"
    mkdir -p "$work"
    echo "fuzz $t: $secs s"
    cargo fuzz run -s none $build "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 2>&1 | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done|INFO: seed corpus)|panicked|Test unit written' || true
    # `cargo fuzz run` exits non-zero on a crash, a timeout or an out-of-memory input; the grep
    # above hides that, so check for the artifact it leaves.
    if ls fuzz/artifacts/"$t"/* >/dev/null 2>&1; then
        echo "fuzz $t: failing inputs in fuzz/artifacts/$t (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -O $t FILE)" >&2
        exit 1
    fi
done
