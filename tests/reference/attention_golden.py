#!/usr/bin/env python3
"""Golden attention weights for the attention lens (tests/attention.rs): HF transformers, fp32,
`attn_implementation="eager"`, `output_attentions=True`, on exactly the GGUF's weights.

For each model and prompt it records the post-softmax attention of a few query tokens over every
key, for every layer and head, plus a short greedy continuation with HF's top-5 logprobs at each step (the Gemma 3 prompt is longer than its 512-token sliding window, so local
layers mask there and the model test reaches past the window).

For SmolLM2 and the tiny random models (large activations) it also records `weights_kvf16_e5`: the same
attention with K and V rounded to fp16 where they enter the attention, i.e. at attend's KV-cache
precision, all else fp32.

Weights are stored as integers in units of 1e-5 (`round(w * 1e5)`), which keeps the files small;
the rounding (<= 5e-6) is far inside the test's 1e-3 tolerance.

    (venv from README.md: torch, transformers, gguf, numpy, sentencepiece, protobuf)
    bash tests/fetch-models.sh
    HF_HUB_OFFLINE=1 ~/.cache/attend/venv-ref/bin/python tests/reference/attention_golden.py [--only NAME]

Writes tests/reference/attention-<name>.json.
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

HERE = Path(__file__).resolve().parent
MODELS = Path(os.environ.get("ATTEND_CACHE", Path.home() / ".cache/attend")) / "models"
SCALE = 100_000
KV_F16_TOO = {"smollm2-135m", "tiny-qwen2", "tiny-llama-spm", "tiny-gemma2"}
N_GREEDY = 8

PRONOUN = "The animal didn't cross the road because it was too tired."
BANK = "The bank can ensure your money is safe. They sat on the bank of the river."
# Distinct paragraphs, repeated until the prompt passes Gemma 3's 512-token sliding window.
LONG_PARAGRAPHS = [
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "developed a system of movable metal type in Mainz. His invention made books far cheaper to "
    "produce, helped spread literacy across Europe, and allowed scientists to share their results "
    "quickly. Within fifty years, printing shops had opened in more than two hundred cities.",
    "Rivers shape the land they cross. Over thousands of years, water carries sand and stone from "
    "the mountains to the sea, carving valleys, building deltas and feeding the wetlands where "
    "birds stop on their long journeys between the seasons.",
    "In the kitchen, Maria measured flour, sugar and butter for the cake her grandmother used to "
    "bake every Sunday. The recipe was written in faded ink on a card that had travelled with the "
    "family from one country to another.",
    "A computer program is a list of instructions. The processor reads each instruction, performs "
    "a small step such as adding two numbers or moving a value in memory, and then moves on to "
    "the next one, billions of times every second.",
]

MODELS_SPEC = {
    # name: (gguf path, prompts: [(label, text, queries, min_tokens)])
    "smollm2-135m": (MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf", "real"),
    "gemma3-270m": (MODELS / "gemma-3-270m-q4_k_m.gguf", "real"),
    "tiny-qwen2": (HERE / "tiny-qwen2.gguf", "tiny"),
    "tiny-llama-spm": (HERE / "tiny-llama-spm.gguf", "tiny"),
    "tiny-gemma2": (HERE / "tiny-gemma2.gguf", "tiny"),
}


def config_overrides(path):
    """Config values transformers' GGUF loader does not read (it would take Gemma2Config's defaults):
    gemma2's soft-caps from the file, and query_pre_attn_scalar as llama.cpp derives it (head_dim,
    but d_model / n_heads for the 46-layer 27B)."""
    import gguf
    fields = gguf.GGUFReader(str(path)).fields
    if fields["general.architecture"].contents() != "gemma2":
        return {}
    f = lambda k: fields[f"gemma2.{k}"].contents()
    qpas = (f("embedding_length") // f("attention.head_count") if f("block_count") == 46
            else f("attention.key_length"))
    return {"attn_logit_softcapping": f("attn_logit_softcapping"),
            "final_logit_softcapping": f("final_logit_softcapping"), "query_pre_attn_scalar": qpas}


def long_text(tok, min_tokens):
    text, i = "", 0
    while len(tok(text)["input_ids"]) < min_tokens:
        text += (" " if text else "") + LONG_PARAGRAPHS[i % len(LONG_PARAGRAPHS)]
        i += 1
    return text


def find_token(tok, ids, word):
    """Index of the last token whose text is `word` (with or without a leading space marker)."""
    for j in range(len(ids) - 1, -1, -1):
        piece = tok.convert_ids_to_tokens(ids[j]).replace("Ġ", " ").replace("▁", " ")
        if piece.strip() == word:
            return j
    return None


def encode(e):
    return [int(round(float(w) * SCALE)) for w in e]


def top5(logits):
    x = logits.astype(np.float64)
    m = x.max()
    lp = x - m - np.log(np.exp(x - m).sum())
    order = np.argsort(-lp, kind="stable")[:5]
    return [[int(i), round(float(lp[i]), 5)] for i in order]


def attentions_kv_f16(model, ids):
    """Attentions with K and V rounded to fp16 as they enter the attention (attend's KV cache
    precision), everything else fp32: patches the eager attention of the model's module."""
    mod = sys.modules[type(model.model.layers[0].self_attn).__module__]
    orig = mod.eager_attention_forward

    def rounded(module, query, key, value, *args, **kw):
        return orig(module, query, key.half().float(), value.half().float(), *args, **kw)

    mod.eager_attention_forward = rounded
    try:
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_attentions=True, use_cache=False)
    finally:
        mod.eager_attention_forward = orig
    return [a[0].numpy() for a in out.attentions]


def run(name, path, kind, long_tokens):
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager",
        **config_overrides(path)).eval()
    cfg = model.config
    prompts = []
    texts = [("pronoun", PRONOUN), ("bank", BANK)]
    if long_tokens:
        texts.append(("long", long_text(tok, long_tokens)))
    for label, text in texts:
        ids = tok(text)["input_ids"]
        if label == "long":
            ids = ids[:long_tokens]
        n = len(ids)
        queries = {1, n // 2, n - 1}
        for word in ("it", "bank"):
            j = find_token(tok, ids, word)
            if j is not None:
                queries.add(j)
        if label == "long":
            queries |= {300, 515}  # past the 512-token window: local layers mask keys 0..3
        queries = sorted(q for q in queries if 0 < q < n)
        with torch.no_grad():
            out = model(torch.tensor([ids]), output_attentions=True, use_cache=False)
        att = [a[0].numpy() for a in out.attentions]  # per layer [heads, q, k]
        # Where attend's f16 KV cache alone moves weights by ~1e-3 (large activations: the tiny
        # random models, SmolLM2), also the weights with K/V rounded to fp16.
        att16 = attentions_kv_f16(model, ids) if name in KV_F16_TOO else None
        logits = out.logits[0, -1].numpy()
        # Greedy continuation by hand (argmax of raw logits, no EOS stop).
        greedy, greedy_top5, cur = [], [], list(ids)
        with torch.no_grad():
            step = logits
            for _ in range(N_GREEDY):
                nxt = int(step.argmax())
                greedy.append(nxt)
                greedy_top5.append(top5(step))
                cur.append(nxt)
                step = model(torch.tensor([cur]), use_cache=False).logits[0, -1].numpy()
        rows = []
        for q in queries:
            w = [[encode(att[layer][h, q, : q + 1]) for h in range(att[layer].shape[0])]
                 for layer in range(len(att))]
            sums = [abs(float(att[layer][h, q, : q + 1].sum()) - 1) for layer in range(len(att))
                    for h in range(att[layer].shape[0])]
            assert max(sums) < 1e-4, (name, label, q, max(sums))
            row = {"query": q, "weights_e5": w}
            if att16 is not None:
                row["weights_kvf16_e5"] = [[encode(att16[layer][h, q, : q + 1])
                                            for h in range(att16[layer].shape[0])]
                                           for layer in range(len(att16))]
            rows.append(row)
        prompts.append({"label": label, "text": text, "ids": [int(i) for i in ids],
                        "queries": rows, "hf_greedy": greedy, "hf_greedy_top5": greedy_top5})
        print(f"{name} {label}: {n} tokens, queries {queries}", flush=True)
    window = getattr(cfg, "sliding_window", None)
    layer_types = getattr(cfg, "layer_types", None)
    return {
        "schema": 1,
        "model": {"file": path.name, "kind": kind},
        "note": "HF transformers fp32, eager attention, output_attentions=True, weights "
                "dequantized from the GGUF; weights_e5[layer][head][key] = round(weight * 1e5) "
                "for keys 0..=query",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "n_layers": len(att), "n_heads": int(att[0].shape[0]),
        "sliding_window": window, "layer_types": layer_types,
        "prompts": prompts,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    torch.manual_seed(0)
    for name, (path, kind) in MODELS_SPEC.items():
        if a.only and name not in a.only:
            continue
        long_tokens = 640 if name.startswith("gemma3") else 0
        g = run(name, path, kind, long_tokens)
        out = HERE / f"attention-{name}.json"
        out.write_text(json.dumps(g, separators=(",", ":")) + "\n")
        print(f"wrote {out} ({out.stat().st_size} bytes)", flush=True)


if __name__ == "__main__":
    main()
