#!/usr/bin/env bash
# Side-by-side speed in one run on this machine, on the same GGUF and token counts, with attend's
# ratio to every peer (prefill and decode). Not part of ./build.sh test. See tests/perf/README.md.
#   native: attend (wgpu on lavapipe)  vs  llama.cpp CPU backend (llama-cpp-python in
#           $ATTEND_CACHE/perf-venv, ~10 min to build once) and llama.cpp Vulkan backend on the
#           same lavapipe adapter ($ATTEND_CACHE/perf-venv-vulkan, tests/perf/build_llama_vulkan.sh,
#           15-80 min to build once);
#   browser: in one headless Chromium session, attend-llm's engine.bench() (WebGPU on SwiftShader)
#           vs wllama (@wllama/wllama, llama.cpp in wasm on the CPU), tests/perf/browser_bench.mjs.
# usage: tests/perf/compare.sh [MODEL ...]   (default: SmolLM2-135M Q4_1 and Gemma 3 270M Q4_K_M)
# env:   PROMPT_TOKENS=128 GEN_TOKENS=64 REPEAT=3          native token counts and repeats
#        LLAMA_VULKAN=1 (0 skips the Vulkan peer)  BROWSER=1 (0 skips the browser pair)
#        BROWSER_PROMPT_TOKENS=32 BROWSER_GEN_TOKENS=16 BROWSER_REPEAT=1 (SwiftShader is slow)
#        BROWSER_MODELS="SmolLM2-135M-Instruct.Q4_1.gguf" (file names in $ATTEND_CACHE/models)
#        LLAMA_THREADS=2 (llama.cpp's CPU threads)  WLLAMA_THREADS=1 (>1: cross-origin-isolated page, wllama's pthread build)
#        OUT=target/perf/compare-<date>.jsonl (every measurement, one JSON object a line)
set -euo pipefail
cd "$(dirname "$0")/../.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
CACHE="${ATTEND_CACHE:-$HOME/.cache/attend}"
TARGET="${CARGO_TARGET_DIR:-target}"
N="${PROMPT_TOKENS:-128}" G="${GEN_TOKENS:-64}" R="${REPEAT:-3}"
BN="${BROWSER_PROMPT_TOKENS:-32}" BG="${BROWSER_GEN_TOKENS:-16}" BR="${BROWSER_REPEAT:-1}"
VULKAN="${LLAMA_VULKAN:-1}" BROWSER="${BROWSER:-1}"
BROWSER_MODELS="${BROWSER_MODELS:-SmolLM2-135M-Instruct.Q4_1.gguf}"
mkdir -p "$TARGET/perf"
OUT="${OUT:-$TARGET/perf/compare-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
: > "$OUT"
record() { # MODEL JSON EXTRA_JSON: one line of $OUT (the peer's JSON, the model's file name, EXTRA)
    python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d.update(json.loads(sys.argv[3])); d["model"]=sys.argv[1]; print(json.dumps(d))' \
        "$(basename "$1")" "$2" "$3" >> "$OUT"
}

# --- peers, built once (idempotent) ---
VENV="$CACHE/perf-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
    python3 -m venv "$VENV"
    # Not -march=native: on these VMs the native build dies with SIGILL (CPUID reports more than
    # the hypervisor allows); AVX2/FMA/F16C is what llama.cpp's x86 kernels need.
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
        nice -n 19 "$VENV/bin/pip" install -q --no-cache-dir --force-reinstall llama-cpp-python==0.3.36 numpy
fi
[ "$VULKAN" = 0 ] || tests/perf/build_llama_vulkan.sh
nice -n 19 cargo build -q --release --bin attend
if [ "$BROWSER" != 0 ]; then
    [ -d "$CACHE/npm/node_modules/@wllama/wllama" ] ||
        npm install --silent --no-audit --no-fund --prefix "$CACHE/npm" @wllama/wllama@3.13.0 >/dev/null
    [ -d "$CACHE/npm/node_modules/playwright-core" ] ||
        npm install --silent --no-audit --no-fund --prefix "$CACHE/npm" playwright-core@1 >/dev/null
    # The browser engine must be the current source: rebuild the npm package when src/ or shaders/
    # changed since (or when it was never built).
    wasm=www/attend-llm/wasm/attend_bg.wasm
    if [ ! -f "$wasm" ] || [ -n "$(find src shaders Cargo.toml -newer "$wasm" -print -quit 2>/dev/null)" ]; then
        nice -n 19 ./build.sh pkg >&2
    fi
fi

# --- measurements ---
models=("$@")
[ ${#models[@]} -gt 0 ] || models=("$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$CACHE/models/gemma-3-270m-q4_k_m.gguf")
for m in "${models[@]}"; do
    name=$(basename "$m")
    echo "== $name: attend native (prompt $N, gen $G, median of $R)" >&2
    a=$("$TARGET/release/attend" bench --json --model "$m" --context 512 --prompt-tokens "$N" --gen-tokens "$G" --repeat "$R" 2>/dev/null)
    record "$m" "$a" '{"peer": "attend", "where": "native wgpu (lavapipe)"}'
    echo "== $name: llama.cpp CPU" >&2
    if c=$("$VENV/bin/python" tests/perf/llama_cpp_bench.py "$m" "$N" "$G" "$R"); then
        record "$m" "$c" '{"peer": "llama.cpp CPU", "where": "native CPU, '"${LLAMA_THREADS:-2}"' threads"}'
    else echo "llama.cpp CPU failed on $name" >&2; fi
    if [ "$VULKAN" != 0 ]; then
        echo "== $name: llama.cpp Vulkan (lavapipe)" >&2
        if v=$(GGML_VK_VISIBLE_DEVICES=0 "$CACHE/perf-venv-vulkan/bin/python" tests/perf/llama_cpp_bench.py "$m" "$N" "$G" "$R" --gpu); then
            record "$m" "$v" '{"peer": "llama.cpp Vulkan", "where": "native Vulkan (lavapipe)"}'
        else echo "llama.cpp Vulkan failed on $name" >&2; fi
    fi
    if [ "$BROWSER" != 0 ] && [[ " $BROWSER_MODELS " == *" $name "* ]]; then
        echo "== $name: browser, attend-llm vs wllama (prompt $BN, gen $BG, median of $BR)" >&2
        node tests/perf/browser_bench.mjs "$m" "$BN" "$BG" "$BR" | while IFS= read -r line; do
            peer=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["peer"])' "$line")
            if [ "$peer" = attend ]; then
                record "$m" "$line" '{"peer": "attend", "where": "Chromium WebGPU (SwiftShader)", "browser": true}'
            else
                record "$m" "$line" '{"peer": "wllama", "where": "Chromium wasm (CPU)", "browser": true}'
            fi
        done || echo "browser bench failed on $name (see the [page] lines above)" >&2
    fi
done

python3 tests/perf/table.py "$OUT"
echo "(all measurements: $OUT)" >&2
