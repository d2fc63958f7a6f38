#!/usr/bin/env python3
"""Writes golden reference outputs (tests/reference/<name>.json) for attend's model tests.

References, none written here: HF transformers in fp32 (weights dequantized from the GGUF, or the
tiny models' HF directories) and llama.cpp through llama-cpp-python. Greedy decoding is done by hand
(argmax of raw logits, KV cache, no EOS stop, no logits processors) in both, so nothing but the
model math differs. See README.md for the schema and how to regenerate.

Usage: HF_HUB_OFFLINE=1 python make_golden.py [--models DIR] [--tiny-hf DIR] [--only NAME ...]
"""
import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
N_GREEDY = 32
N_GREEDY_TINY = 24
TOPK = 5
N_TEACHER = 64

PROMPTS = [
    {"text": "The capital of France is", "chat": False},
    {"messages": [{"role": "user", "content": "Translate 'Hello' into French."}], "chat": True},
    {"text": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", "chat": False},
    {"text": "1, 2, 3, 4, 5,", "chat": False},
    {"text": "Le chat est sur la table. Die Katze ist auf dem Tisch. 猫はテーブルの上にいます。", "chat": False},
    {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": "Count from 1 to 10, then say done."}], "chat": True},
]

# A 7th prompt for the tiny models of the architectures added later (tiny-qwen3, tiny-gemma2): well
# over 40 tokens with their tiny vocabularies, so the prefill reaches positions far from the short
# prompts' and passes sliding windows (tiny-gemma2: 8) several times.
LONG_PROMPT = {
    "text": "Rivers shape the land they cross. Over thousands of years, water carries sand and stone "
            "from the mountains to the sea, carving valleys, building deltas and feeding the wetlands "
            "where birds stop on their long journeys between the seasons.",
    "chat": False,
}

TEACHER_TEXT = (
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "developed a system of movable metal type in Mainz. His invention made books far cheaper to "
    "produce, helped spread literacy across Europe, and allowed scientists to share their results "
    "quickly. Within fifty years, printing shops had opened in more than two hundred cities."
)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def top_k(logits: np.ndarray, k: int = TOPK):
    """[[id, logprob], ...] best first, from raw logits (float64 log-softmax, 5 decimals)."""
    x = logits.astype(np.float64)
    m = x.max()
    lse = m + np.log(np.exp(x - m).sum())
    idx = np.argsort(-x, kind="stable")[:k]
    return [[int(i), round(float(x[i] - lse), 5)] for i in idx]


def leading_agreement(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# The Gemma 3 GGUF carries no tokenizer.chat_template; its chat prompts use Gemma 3's published
# turn format, written out here (system text folded into the first user turn, as Gemma 3 does).
GEMMA3_FALLBACK_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\\n\\n' %}"
    "{% set msgs = messages[1:] %}{% else %}{% set first = '' %}{% set msgs = messages %}{% endif %}"
    "{% for m in msgs %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + (first if loop.first else '') + m['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def gguf_chat_template(path: Path):
    import gguf
    field = gguf.GGUFReader(str(path)).fields.get("tokenizer.chat_template")
    return field.contents() if field is not None else None


class HF:
    def __init__(self, model_dir: Path, gguf_file: str | None, fallback_template: str | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        self.tok = AutoTokenizer.from_pretrained(model_dir, **kw)
        if gguf_file and not getattr(self.tok, "chat_template", None):
            # transformers does not carry tokenizer.chat_template over from every GGUF (gemma3).
            self.tok.chat_template = gguf_chat_template(model_dir / gguf_file)
        self.template_source = "model"
        if not getattr(self.tok, "chat_template", None):
            self.tok.chat_template = fallback_template
            self.template_source = "fallback (the GGUF has no tokenizer.chat_template): " + str(fallback_template)
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="eager", **kw).eval()

    def encode(self, p):
        """Returns (text, ids, add_special): exactly what is fed to both references."""
        if p["chat"]:
            text = self.tok.apply_chat_template(p["messages"], add_generation_prompt=True, tokenize=False)
            # The template already holds any BOS; tokenize its text with special tokens parsed.
            return text, self.tok(text, add_special_tokens=False)["input_ids"], False
        return p["text"], self.tok(p["text"], add_special_tokens=True)["input_ids"], True

    @torch.no_grad()
    def greedy(self, ids, n):
        out, tops, past = [], [], None
        x = torch.tensor([ids])
        for _ in range(n):
            r = self.model(input_ids=x, past_key_values=past, use_cache=True)
            past = r.past_key_values
            logits = r.logits[0, -1].float().numpy()
            t = top_k(logits)
            nxt = int(np.argmax(logits))
            out.append(nxt)
            tops.append(t)
            x = torch.tensor([[nxt]])
        return out, tops

    @torch.no_grad()
    def all_logits(self, ids):
        return self.model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


class LlamaCpp:
    def __init__(self, gguf_path: Path):
        from llama_cpp import Llama
        self.llm = Llama(model_path=str(gguf_path), n_ctx=256, n_batch=256, n_ubatch=256,
                         logits_all=True, n_threads=2, n_threads_batch=2, seed=0, verbose=False)

    def tokenize(self, text, add_special):
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)

    def greedy(self, ids, n):
        self.llm.reset()
        self.llm.eval(list(ids))
        out, tops = [], []
        for _ in range(n):
            logits = np.array(self.llm.scores[self.llm.n_tokens - 1], dtype=np.float32)
            nxt = int(np.argmax(logits))
            out.append(nxt)
            tops.append(top_k(logits))
            self.llm.eval([nxt])
        return out, tops

    def all_logits(self, ids):
        self.llm.reset()
        self.llm.eval(list(ids))
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32)


def versions():
    import transformers
    v = {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
         "python": sys.version.split()[0]}
    try:
        import llama_cpp
        v["llama_cpp_python"] = llama_cpp.__version__
    except ImportError:
        v["llama_cpp_python"] = None
    return v


def run(name, gguf_path: Path, hf_dir: Path, hf_gguf: str | None, n_greedy: int, note: str,
        fallback_template: str | None = None, prompt_set=None, llamacpp_note=False):
    print(f"== {name}: {gguf_path}", flush=True)
    hf = HF(hf_dir, hf_gguf, fallback_template)
    try:
        lc = LlamaCpp(gguf_path)
    except Exception as e:  # reported in the JSON, not hidden
        print(f"llama.cpp failed to load {gguf_path}: {e}", flush=True)
        lc = None
    if llamacpp_note:
        # Say which reference the llamacpp_* fields come from, or that there are none.
        v = versions()["llama_cpp_python"]
        note += (f"; llamacpp_* from llama-cpp-python {v} (CPU build), loose reference" if lc is not None
                 else "; no llamacpp_* (llama-cpp-python was not available when this was written)")
    stats = {"greedy_leading_agreement": [], "teacher_forced_top1_agreement": None}
    prompts = []
    for p in prompt_set or PROMPTS:
        text, ids, add_special = hf.encode(p)
        g, gt = hf.greedy(ids, n_greedy)
        entry = {"chat": p["chat"]}
        if p["chat"]:
            entry["messages"] = p["messages"]
        entry.update({"text": text, "add_special": add_special, "ids": ids,
                      "hf_greedy": g, "hf_greedy_top5": gt})
        if lc is not None:
            entry["llamacpp_ids"] = lc.tokenize(text, add_special)
            lg, lgt = lc.greedy(ids, n_greedy)
            entry["llamacpp_greedy"] = lg
            entry["llamacpp_greedy_top5"] = lgt
            stats["greedy_leading_agreement"].append(leading_agreement(g, lg))
        margins = [t[0][1] - t[1][1] for t in gt]
        entry["hf_min_top1_margin"] = round(min(margins), 5)
        prompts.append(entry)
        print(f"  prompt {len(prompts)}: {len(ids)} ids, tokenizer match llama.cpp: "
              f"{entry.get('llamacpp_ids') == ids}, greedy agree: "
              f"{stats['greedy_leading_agreement'][-1] if lc else '-'}/{n_greedy}, "
              f"min top1-top2 margin {entry['hf_min_top1_margin']}", flush=True)

    tf_ids = hf.tok(TEACHER_TEXT, add_special_tokens=True)["input_ids"][:N_TEACHER]
    hl = hf.all_logits(tf_ids)
    tf = {"text": TEACHER_TEXT, "note": f"ids = HF tokenization (add_special) truncated to {N_TEACHER}; "
          "row i is the distribution of the token after ids[0..=i]",
          "ids": tf_ids, "hf_top5": [top_k(r) for r in hl]}
    if lc is not None:
        ll = lc.all_logits(tf_ids)
        tf["llamacpp_top5"] = [top_k(r) for r in ll]
        agree = sum(int(a[0][0] == b[0][0]) for a, b in zip(tf["hf_top5"], tf["llamacpp_top5"]))
        stats["teacher_forced_top1_agreement"] = f"{agree}/{len(tf_ids)}"
        # Max |logprob| difference over the HF top-1 token, a single number for tolerance setting.
        diffs = []
        for i, row in enumerate(hl):
            j = int(np.argmax(row))
            lp_h = top_k(row, 1)[0][1]
            x = ll[i].astype(np.float64)
            lse = x.max() + np.log(np.exp(x - x.max()).sum())
            diffs.append(abs(lp_h - (x[j] - lse)))
        stats["teacher_forced_max_abs_logprob_diff_hf_top1"] = round(float(max(diffs)), 5)
    margins = [r[0][1] - r[1][1] for r in tf["hf_top5"]]
    stats["teacher_forced_hf_min_top1_margin"] = round(min(margins), 5)
    print(f"  teacher forced: {len(tf_ids)} ids, top1 agreement {stats['teacher_forced_top1_agreement']}, "
          f"max |dlogprob| {stats.get('teacher_forced_max_abs_logprob_diff_hf_top1')}", flush=True)

    doc = {
        "schema": 1,
        "model": {"file": gguf_path.name, "sha256": sha256(gguf_path), "size": gguf_path.stat().st_size},
        "note": note,
        "versions": versions(),
        "hf_source": "gguf" if hf_gguf else "hf-dir (tiny model built by make_tiny_models.py)",
        "chat_template_source": hf.template_source,
        "n_greedy": n_greedy,
        "prompts": prompts,
        "teacher_forced": tf,
        "stats": stats,
    }
    out = HERE / f"{name}.json"
    out.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"  wrote {out} ({out.stat().st_size} bytes)", flush=True)


# The tiny models of the architectures added later (issue 9): name -> (GGUF outtype, what it tests).
NEW_TINY = {
    "tiny-qwen3": ("F32", "qwen3 (per-head q/k RMSNorm, no QKV bias, tied embeddings)"),
    "tiny-llama3": ("F32", 'Llama 3.x ("llama3" RoPE frequency scaling as rope_freqs.weight, '
                    "byte-level BPE llama-bpe, tied embeddings)"),
    "tiny-smollm3": ("F16", "smollm3 (no RoPE in every 4th layer, byte-level BPE llama-bpe with ChatML, "
                     "no BOS, tied embeddings)"),
    "tiny-phi3": ("F16", "phi3 (fused attn_qkv and gate/up ffn_up tensors, NeoX RoPE, SentencePiece)"),
    "tiny-phi3-longrope": ("F16", "phi3 with LongRoPE (long/short frequency factors, attention factor 2 "
                           "on cos and sin; original context 4, so the long factors everywhere), "
                           "partial rotary 0.75, tied embeddings"),
    "tiny-gemma2": ("F16", "gemma2 (soft-capping 10 / 15, sliding window 8 on even layers, post-norms)"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=Path, default=Path.home() / ".cache/attend/models")
    ap.add_argument("--tiny-hf", type=Path, default=Path.home() / ".cache/attend/tiny-hf")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    jobs = {
        "smollm2-135m": lambda: run(
            "smollm2-135m", args.models / "SmolLM2-135M-Instruct.Q4_1.gguf", args.models,
            "SmolLM2-135M-Instruct.Q4_1.gguf", N_GREEDY,
            "HF = transformers fp32 on weights dequantized from this GGUF; llama.cpp quantizes "
            "activations (Q8) for quantized matmuls, so compare tightly with hf_*, loosely with llamacpp_*"),
        "gemma3-270m": lambda: run(
            "gemma3-270m", args.models / "gemma-3-270m-q4_k_m.gguf", args.models,
            "gemma-3-270m-q4_k_m.gguf", N_GREEDY,
            "HF = transformers fp32 on weights dequantized from this GGUF; llama.cpp quantizes "
            "activations (Q8) for quantized matmuls, so compare tightly with hf_*, loosely with llamacpp_*",
            GEMMA3_FALLBACK_TEMPLATE),
        "tiny-qwen2": lambda: run(
            "tiny-qwen2", HERE / "tiny-qwen2.gguf", args.tiny_hf / "tiny-qwen2", None, N_GREEDY_TINY,
            "random-weight test model (make_tiny_models.py); HF = the HF directory it was converted from "
            "(weights fp16-representable, GGUF F32: identical weights)"),
        "tiny-llama-spm": lambda: run(
            "tiny-llama-spm", HERE / "tiny-llama-spm.gguf", args.tiny_hf / "tiny-llama-spm", None,
            N_GREEDY_TINY,
            "random-weight test model (make_tiny_models.py); HF = the HF directory it was converted from "
            "(weights fp16-representable, GGUF F16: identical weights)"),
    }
    for name, (outtype, what) in NEW_TINY.items():
        jobs[name] = (lambda name=name, outtype=outtype, what=what: run(
            name, HERE / f"{name}.gguf", args.tiny_hf / name, None, N_GREEDY_TINY,
            f"random-weight test model of {what} (make_tiny_models.py); HF = the HF directory it was "
            f"converted from (weights fp16-representable, GGUF {outtype}: identical weights); prompt 7 is "
            "a long plain prompt (past sliding windows / through scaled RoPE)",
            prompt_set=PROMPTS + [LONG_PROMPT], llamacpp_note=True))
    for name in args.only or list(jobs):
        jobs[name]()


if __name__ == "__main__":
    main()
