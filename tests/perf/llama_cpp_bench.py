"""llama.cpp (through llama-cpp-python) on the same GGUF and token counts as `attend bench`:
prefill of N prompt tokens, then G greedy tokens, medians of R runs. Prints one JSON object.

usage: llama_cpp_bench.py MODEL PROMPT_TOKENS GEN_TOKENS REPEAT [--gpu]
(--gpu offloads every layer: the Vulkan build on lavapipe; needs GGML_VK_VISIBLE_DEVICES=0)
env LLAMA_THREADS: CPU threads (default 2, the machine's cores)
"""
import json, os, re, statistics, sys, tempfile, time

from llama_cpp import Llama

model, n, gen, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
gpu = "--gpu" in sys.argv
threads = int(os.environ.get("LLAMA_THREADS", "2"))
# With --gpu, llama.cpp's load log (written to fd 2) says which device got how many layers: keep it,
# so a run that silently fell back to the CPU (no GGML_VK_VISIBLE_DEVICES=0) is caught.
log = tempfile.TemporaryFile(mode="w+b")
saved = os.dup(2)
if gpu:
    sys.stderr.flush()
    os.dup2(log.fileno(), 2)
try:
    llm = Llama(model_path=model, n_ctx=max(512, n + gen + 8), n_threads=threads, n_batch=512,
                n_gpu_layers=-1 if gpu else 0, verbose=gpu)
finally:
    if gpu:
        os.dup2(saved, 2)
log.seek(0)
text = log.read().decode(errors="replace")
device = None
if gpu:
    off = re.search(r"offloaded (\d+)/(\d+) layers to GPU", text)
    dev = re.search(r"ggml_vulkan: 0 = ([^|\n]+)", text)
    device = dev.group(1).strip() if dev else None
    if not off or off.group(1) != off.group(2) or not device:
        sys.stderr.write(text)
        sys.exit("llama.cpp did not offload every layer to a Vulkan device (set GGML_VK_VISIBLE_DEVICES=0)")
    llm.verbose = False
sentence = b"The quick brown fox jumps over the lazy dog while the attentive model reads every word at once. "
base = llm.tokenize(sentence, add_bos=False, special=False)
prompt = (base * (n // len(base) + 1))[:n]
pre, dec = [], []
for r in range(reps + 1):  # run 0 warms up
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    for _ in range(gen):
        tok = int(llm.scores[llm.n_tokens - 1].argmax())
        llm.eval([tok])
    t2 = time.perf_counter()
    if r:
        pre.append(n / (t1 - t0))
        dec.append(gen / (t2 - t1))
print(json.dumps({"backend": "vulkan" if gpu else "cpu", "device": device, "threads": threads, "prompt_tokens": n, "gen_tokens": gen, "repeat": reps,
                  "prefill_tok_s": statistics.median(pre),
                  "decode_tok_s": statistics.median(dec)}))
