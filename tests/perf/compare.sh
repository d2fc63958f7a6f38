#!/usr/bin/env bash
# Side-by-side speed in one run on this machine: attend (native wgpu) against llama.cpp's CPU
# backend (llama-cpp-python, built once into $ATTEND_CACHE/perf-venv) on the same GGUF and token
# counts, printing attend's ratios. Not part of ./build.sh test (the llama.cpp build takes ~10 min
# on 2 cores). With LLAMA_VULKAN=1 a second venv gets llama.cpp's Vulkan backend (needs the patch
# described in ../shared/ENVIRONMENT.md for Debian 12's Vulkan headers; ~1 h to build).
# usage: tests/perf/compare.sh [MODEL ...]   (default: SmolLM2-135M Q4_1 and Gemma 3 270M)
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${ATTEND_CACHE:-$HOME/.cache/attend}"
N="${PROMPT_TOKENS:-128}" G="${GEN_TOKENS:-64}" R="${REPEAT:-3}"
VENV="$CACHE/perf-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
    python3 -m venv "$VENV"
    # Not -march=native: on these VMs the native build dies with SIGILL (CPUID reports more than
    # the hypervisor allows); AVX2/FMA/F16C is what llama.cpp's x86 kernels need.
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
        "$VENV/bin/pip" install -q --no-cache-dir --force-reinstall llama-cpp-python==0.3.36 numpy
fi
cargo build -q --release --bin attend
models=("$@")
[ ${#models[@]} -gt 0 ] || models=("$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" "$CACHE/models/gemma-3-270m-q4_k_m.gguf")
for m in "${models[@]}"; do
    a=$(./target/release/attend bench --json --model "$m" --context 512 --prompt-tokens "$N" --gen-tokens "$G" --repeat "$R" 2>/dev/null)
    c=$("$VENV/bin/python" tests/perf/llama_cpp_bench.py "$m" "$N" "$G" "$R")
    python3 - "$m" "$a" "$c" <<'PY'
import json, os, sys
m, a, c = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{os.path.basename(m)}  (prompt {a['prompt_tokens']}, gen {a['gen_tokens']}, median of {a['repeat']})")
print(f"  attend    prefill {a['prefill_tok_s']:8.1f} tok/s  decode {a['decode_tok_s']:7.2f} tok/s  "
      f"roofline {a['roofline_fraction']:.2f} ({a['decode_gb_s']:.2f} of {a['copy_gb_s']:.2f} GB/s)  "
      f"{a['dispatches_per_layer']:.1f} dispatches/layer  CPU {a['cpu_ms_per_token']:.2f} ms/token")
print(f"  llama.cpp {c['backend']:4} prefill {c['prefill_tok_s']:8.1f} tok/s  decode {c['decode_tok_s']:7.2f} tok/s")
print(f"  ratio attend/llama.cpp-{c['backend']}: prefill {a['prefill_tok_s']/c['prefill_tok_s']:.3f}  "
      f"decode {a['decode_tok_s']/c['decode_tok_s']:.3f}")
PY
done
