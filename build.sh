#!/usr/bin/env bash
# attend's one entry point.
#   ./build.sh test   install what the tests need (Debian), then run every native and browser test
#   ./build.sh demo   build attend and run the default model (SmolLM2-135M-Instruct) on the GPU
# Downloads (models, tools) go to $ATTEND_CACHE (default ~/.cache/attend) and are reused.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
export ATTEND_CACHE="${ATTEND_CACHE:-$HOME/.cache/attend}"
mkdir -p "$ATTEND_CACHE"
export PATH="$HOME/.cargo/bin:$ATTEND_CACHE/npm/node_modules/.bin:$PATH"

# Each step is stamped with the seconds since the start, so a CI log shows where the time goes.
step() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*"; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=
apt_install() { # install the Debian packages that are not installed yet
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    step "apt-get install ${missing[*]}"
    if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

need_rust() {
    command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs) first"
    # rustc links with cc, and the CLI's allocator (mimalloc) is C compiled by the cc crate.
    apt_install gcc libc6-dev
    rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
        || { step "rustup target add wasm32-unknown-unknown"; rustup target add wasm32-unknown-unknown; }
    local c
    for c in clippy rustfmt; do
        rustup component list --installed 2>/dev/null | grep -q "^$c" \
            || { step "rustup component add $c"; rustup component add "$c"; }
    done
}

need_wasm_bindgen() { # wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly
    local want have
    want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
    have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
    if [ "$have" != "$want" ]; then
        step "cargo install wasm-bindgen-cli $want (once; ~10 min)"
        cargo install -q wasm-bindgen-cli --version "$want"
    fi
}

need_binaryen() { # Debian's binaryen 108 miscompiles wasm-bindgen output; npm's is current
    if [ ! -x "$ATTEND_CACHE/npm/node_modules/.bin/wasm-opt" ]; then
        command -v npm >/dev/null || apt_install nodejs npm
        step "npm install binaryen (wasm-opt)"
        mkdir -p "$ATTEND_CACHE/npm"
        npm install --silent --prefix "$ATTEND_CACHE/npm" binaryen@132 >/dev/null
    fi
}

need_system() {
    apt_install mesa-vulkan-drivers libvulkan1 chromium chromium-driver ca-certificates
    command -v python3 >/dev/null || apt_install python3
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
}

# The wasm engine as an npm package: www/attend-llm/wasm (used by the page) and pkg/ (npm pack).
build_pkg() {
    need_wasm_bindgen
    need_binaryen
    step "wasm engine (release) → www/attend-llm/wasm, pkg/"
    cargo build --lib --release --target wasm32-unknown-unknown
    rm -rf www/attend-llm/wasm
    wasm-bindgen --target web --out-dir www/attend-llm/wasm --out-name attend \
        target/wasm32-unknown-unknown/release/attend.wasm
    wasm-opt -O2 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
        www/attend-llm/wasm/attend_bg.wasm -o www/attend-llm/wasm/attend_bg.wasm
    rm -rf pkg && cp -r www/attend-llm pkg && cp README.md pkg/
    (cd pkg && npm pack --silent --pack-destination ../target >/dev/null)
    ls -l www/attend-llm/wasm/attend_bg.wasm target/attend-llm-*.tgz
}

need_playwright() { # playwright-core drives Debian's chromium; it never downloads a browser
    [ -d "$ATTEND_CACHE/npm/node_modules/playwright-core" ] || {
        step "npm install playwright-core"
        npm install --silent --prefix "$ATTEND_CACHE/npm" playwright-core@1 >/dev/null
    }
}

run_tests() {
    # No incremental caches: a clean CI run never reuses them and they were a good part of the
    # disk the run fills (CI ran out of disk once).
    export CARGO_INCREMENTAL=0
    need_system
    need_rust
    step "cargo fmt --check; clippy -D warnings (native, all targets; wasm32: library and browser tests); cargo doc -D warnings"
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings
    cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings
    cargo clippy --target wasm32-unknown-unknown --test kernels --test wasm_engine --test wasm_models --test wasm_limits --test wasm_attention -- -D warnings
    # The API docs' links resolve (native and wasm32 builds document different items).
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --target wasm32-unknown-unknown
    need_wasm_bindgen
    need_binaryen
    step "test models and tokenizer vectors (cached in $ATTEND_CACHE)"
    bash tests/fetch-models.sh
    [ -f tests/fetch-vocab.sh ] && bash tests/fetch-vocab.sh
    # The native suite runs one test binary at a time, mostly one model at a time (about one core),
    # and so do the fuzzer, the browser suite and the end-to-end tests (Chromium compiling and
    # running shaders on SwiftShader): on CI's two cores the native tests run beside all the rest.
    # Their output is kept in a log and shown once they end.
    local native_log="$ROOT/target/native-tests.log" native_rc=0 native_pid
    mkdir -p target
    step "native tests (wgpu on $(command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>/dev/null | awk -F= '/deviceName/ {print $2; exit}' || echo Vulkan)), in the background → $native_log"
    # Then SmolLM2 once more with int8 activations forced in decode (a browser's arithmetic for
    # it) and in prefill (opt-in), checked against HF at llama.cpp's own distance (tests/models.rs),
    # and Gemma 3 with int8 in decode only (a browser's arithmetic; its prefill keeps f32 in the
    # blocks), at the float bounds.
    { cargo test --no-fail-fast; a=$?
      echo "== SmolLM2 with int8 activations (ATTEND_MATVEC_Q8=1 ATTEND_PREFILL_Q8=1)"
      ATTEND_MATVEC_Q8=1 ATTEND_PREFILL_Q8=1 cargo test --test models -- smollm2_matches_transformers; b=$?
      echo "== Gemma 3 with int8 activations in decode (ATTEND_MATVEC_Q8=1)"
      ATTEND_MATVEC_Q8=1 cargo test --test models -- gemma3_matches_transformers; c=$?
      [ "$a" = 0 ] && [ "$b" = 0 ] && [ "$c" = 0 ]; } >"$native_log" 2>&1 &
    native_pid=$!
    # A failing step below ends the script: stop the native tests with it and say where they wrote.
    # (double quotes: the pid and log are written into the trap now; at exit run_tests's locals are gone)
    trap "pkill -P $native_pid 2>/dev/null; kill $native_pid 2>/dev/null && echo 'build.sh: native tests stopped; their output so far: $native_log' >&2" EXIT
    step "fuzzing: 5 targets × 6 s over fuzz/corpus (cargo-fuzz, stable Rust, no sanitizer)"
    FUZZ_BUILD=--dev bash fuzz/run.sh 6
    # CI's disk is small (it once filled up here): .ci/run asks for the fuzz build (~0.6 GB) to go
    # once it has run; a developer's rerun keeps it.
    [ -z "${ATTEND_FREE_DISK:-}" ] || rm -rf fuzz/target
    step "browser tests (headless Chromium, WebGPU on SwiftShader)"
    # The timeout is per test binary: the kernel suite alone takes 8-12 min on SwiftShader here.
    CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=1800 \
        cargo test --target wasm32-unknown-unknown --test kernels --test wasm_engine --test wasm_models --test wasm_limits --test wasm_attention
    build_pkg
    step "Vite example imports attend-llm by name"
    (cd www/example-vite && npm install --silent --no-audit --no-fund >/dev/null && npx vite build --logLevel warn)
    ls www/example-vite/dist/assets | grep -q '\.wasm$' || die "the Vite build did not bundle the engine's wasm"
    step "end-to-end chat page test (playwright-core + Chromium)"
    need_playwright
    # The CLI that `cargo test` built for its own tests (a plain `cargo build --bin attend` would
    # rebuild every dependency without the dev-dependencies' features: minutes on CI); the native
    # tests built it before the browser tests could take the build directory's lock.
    [ -x target/debug/attend ] || die "target/debug/attend missing: cargo test should have built it"
    ATTEND_BIN="$ROOT/target/debug/attend" node --test tests/e2e/
    step "waiting for the native tests"
    wait "$native_pid" || native_rc=$?
    trap - EXIT
    step "native tests: output"
    cat "$native_log"
    [ "$native_rc" = 0 ] || die "native tests failed (exit $native_rc)"
    step "all tests passed"
}

# The long test of files past 2 GiB (issue #9 item 6; ~2 min more than ./build.sh test, which
# runs its native half): the native test writes the sparse files, Chromium loads them.
run_large() {
    need_system
    need_rust
    build_pkg
    need_playwright
    step "a model past 2 GiB, natively (writes the sparse files to $ATTEND_CACHE/large)"
    cargo test --test large_file
    step "the same files in headless Chromium: URL, File and split URLs"
    node --test tests/e2e/large-file.long.mjs
    step "large-file tests passed"
}

run_demo() {
    need_system
    need_rust
    step "default model (cached in $ATTEND_CACHE)"
    bash tests/fetch-models.sh
    build_pkg
    local port="${PORT:-8080}"
    step "chat page: open http://127.0.0.1:$port/ in a WebGPU browser (Ctrl-C stops)"
    MODELS_DIR="$ATTEND_CACHE/models" exec node tests/e2e/serve.mjs www "$port"
}

case "${1:-}" in
    test) run_tests ;;
    demo) run_demo ;;
    pkg) need_rust; build_pkg ;;
    large) run_large ;;
    *) echo "usage: ./build.sh test | demo   (also: pkg, large)" >&2; exit 2 ;;
esac
