"""Prints compare.sh's measurements (a JSON-lines file) as one Markdown table with attend's ratio
to every peer: native peers against attend native, browser peers against attend in the same browser.
usage: python3 tests/perf/table.py target/perf/compare-*.jsonl
"""
import json, os, sys, time

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
models = list(dict.fromkeys(r["model"] for r in rows))
short = {"SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M Q4_1", "gemma-3-270m-q4_k_m.gguf": "Gemma 3 270M Q4_K_M"}


def f(x):
    return "—" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def ratio(a, b):
    return "—" if not a or not b else f"{a / b:.2f}×"


print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
      f"load average {os.getloadavg()[0]:.1f} at the end (tok/s; median of the repeats)")
print()
print("| model | runtime | where | prompt + gen tokens | prefill tok/s | decode tok/s | attend ÷ it, prefill | attend ÷ it, decode |")
print("|---|---|---|---|---|---|---|---|")
for m in models:
    for browser in (False, True):
        group = [r for r in rows if r["model"] == m and bool(r.get("browser")) == browser]
        base = next((r for r in group if r["peer"] == "attend"), None)
        for r in sorted(group, key=lambda r: r["peer"] != "attend"):
            where = r["where"]
            if r["peer"] == "wllama":
                t = r.get("threads", 1)
                where += f", {t} thread{'s' if t != 1 else ''}"
            pre, dec = r.get("prefill_tok_s"), r.get("decode_tok_s")
            is_base = r is base
            print(f"| {short.get(m, m)} | {r['peer']} | {where} | {r.get('prompt_tokens', '?')} + {r.get('gen_tokens', '?')} | "
                  f"{f(pre)} | {f(dec)} | {'—' if is_base or not base else ratio(base['prefill_tok_s'], pre)} | "
                  f"{'—' if is_base or not base else ratio(base['decode_tok_s'], dec)} |")
print()
for r in rows:
    if r["peer"] == "attend":
        extra = f", load {r['load_s']:.1f} s" if r.get("browser") else ""
        if r.get("first_load_s") is not None:
            extra = (f", load {r['first_load_s']:.1f} s on a first visit (compile {r['first_compile_s']:.1f} s, "
                     f"{r['first_pipelines']} pipelines), {r['load_s']:.1f} s on a reload (compile {r['compile_s']:.1f} s, "
                     f"{r['pipelines']} pipelines)")
        print(f"- attend, {short.get(r['model'], r['model'])}, {r['where']}: roofline {r['roofline_fraction']:.2f} "
              f"({r['decode_gb_s']:.2f} of {r['copy_gb_s']:.2f} GB/s), {r['dispatches_per_layer']:.1f} dispatches/layer, "
              f"CPU {r['cpu_ms_per_token']:.2f} ms/token, TTFT {r['ttft_s']:.2f} s{extra}")
    elif r["peer"] == "wllama":
        print(f"- wllama, {short.get(r['model'], r['model'])}: wall-clock prefill {f(r['prefill_wall_tok_s'])} / decode "
              f"{f(r['decode_wall_tok_s'])} tok/s (the table uses llama.cpp's own timings), load {r['load_s']:.1f} s, "
              f"cross-origin isolated: {r['cross_origin_isolated']}")
