#!/usr/bin/env python3
"""Builds the tiny random-weight test models tests/reference/tiny-*.gguf (see MODELS below).

They are random test data (no pretrained weights): architectures with no small real model on PyPI
still get an end-to-end check against HF transformers. Each model:
  * gets a tokenizer trained here on the small corpus below (no real Qwen2 / Llama tokenizer files
    can be downloaded here, and a real 150k-token vocabulary would make the fixture tens of MB),
  * is built with transformers from a fixed seed, with weights drawn wide (std ~0.25 instead of
    0.02) so logits are well separated and greedy choices are not near-ties,
  * has every weight rounded to an fp16-representable value first, so the F16 GGUF holds exactly
    the weights HF computes with,
  * is saved as an HF directory under --work (not committed; make_golden.py reads it for the
    reference tokenizer and fp32 model) and converted with llama.cpp's convert_hf_to_gguf.py.

tiny-qwen2: byte-level BPE with Qwen2's pre-tokenizer regex, saved as Qwen2TokenizerFast. Its
pre-tokenizer hash is unknown to convert_hf_to_gguf.py, so the conversion runs in-process with
get_vocab_base_pre overridden to "qwen2" (what the real Qwen2 tokenizer maps to).
tiny-llama-spm: SentencePiece BPE with byte_fallback (tokenizer.ggml.model = llama), LlamaTokenizer.
The tiny models of the architectures added later (issue 9: tiny-qwen3, tiny-gemma2) follow below.

Usage: python make_tiny_models.py --llama-cpp DIR [--work DIR] [--out DIR]
  DIR = the llama.cpp tree inside the llama-cpp-python 0.3.36 sdist (vendor/llama.cpp).
"""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

SEED = 1234
WEIGHT_STD = 0.25
LM_HEAD_STD = 0.6  # logits std ~ 0.6 * sqrt(hidden) ~ 5: well separated top-1 choices
SEED_CANDIDATES = 12  # seeds tried per model; the one with the widest greedy top-1 margin is kept

# Training text for both tokenizers (written for this file; mixed prose, code, numbers, a little
# French/German so merges cover accents; CJK is left out on purpose so prompts exercise byte paths).
CORPUS = """\
The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome.
The quick brown fox jumps over the lazy dog. A small model reads the text and predicts the next word.
Once upon a time there was a little robot who wanted to learn how to count. It counted one, two,
three, four, five, six, seven, eight, nine, ten, and then it started again from the beginning.
1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 100, 1000, 2024, 3.14159
Translate 'Hello' into French: Bonjour. Translate 'Thank you' into French: Merci beaucoup.
Le chat est sur la table. Le café est très bon. L'été dernier, nous sommes allés à la mer.
Die Katze ist auf dem Tisch. Der Hund schläft im Garten. Wir möchten Äpfel und Brötchen kaufen.
El perro come pan. La niña lee un libro en la biblioteca. ¿Dónde está la estación?
def fibonacci(n):
    \"\"\"Return the n-th Fibonacci number.\"\"\"
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

fn main() {
    let values: Vec<u32> = (0..10).map(|x| x * x).collect();
    println!("{:?}", values);
}
function add(a, b) { return a + b; }  // adds two numbers
for (let i = 0; i < 10; i++) { console.log(i); }
The history of writing begins with marks on clay and stone. Over many centuries people learned to
record numbers, names, stories and laws. Printing made books cheaper, and more people learned to
read. Today computers store text as numbers, and language models turn those numbers into tokens.
Water boils at one hundred degrees Celsius at sea level. The sun rises in the east and sets in the west.
She said: "I've been there, you're sure? We'll see, they'd know." It's a beautiful day, isn't it?
User: What is two plus two? Assistant: Two plus two is four. User: Thank you! Assistant: You're welcome.
"""

QWEN2_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA2_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
)


def widen_and_round(model, seed):
    """Re-draws every parameter with a wide spread, then rounds it to fp16-representable values."""
    g = torch.Generator().manual_seed(seed)
    # Gemma's RMSNorm multiplies by (1 + w): its stored gains are drawn around 0, not 1.
    norm_center = 0.0 if model.config.model_type.startswith("gemma") else 1.0
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight") or "layernorm" in name:
                # Norm gains near 1 but not exactly, so a missing norm multiply is caught.
                p.copy_(norm_center + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif name == "lm_head.weight" or (name.endswith("embed_tokens.weight")
                                               and model.config.tie_word_embeddings):
                p.copy_(LM_HEAD_STD * torch.randn(p.shape, generator=g))
            else:
                p.copy_(WEIGHT_STD * torch.randn(p.shape, generator=g))
            p.copy_(p.half().float())


@torch.no_grad()
def min_greedy_margin(model, tokz, n_steps=24, prompts=None):
    """Smallest top-1 minus top-2 logit gap over greedy decoding of make_golden.py's prompts."""
    from make_golden import PROMPTS
    worst = float("inf")
    for p in prompts or PROMPTS:
        if p["chat"]:
            text = tokz.apply_chat_template(p["messages"], add_generation_prompt=True, tokenize=False)
            ids = tokz(text, add_special_tokens=False)["input_ids"]
        else:
            ids = tokz(p["text"])["input_ids"]
        for _ in range(n_steps):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            top2 = torch.topk(logits, 2).values
            worst = min(worst, float(top2[0] - top2[1]))
            ids.append(int(torch.argmax(logits)))
    return worst


def pick_seed(make_model, tokz, base_seed, label, prompts=None):
    """Random weights give occasional near-ties; keep the seed whose greedy runs have none."""
    best = None
    for seed in range(base_seed, base_seed + SEED_CANDIDATES):
        torch.manual_seed(seed)
        model = make_model().eval()
        widen_and_round(model, seed)
        m = min_greedy_margin(model, tokz, prompts=prompts)
        print(f"{label}: seed {seed} min greedy top1-top2 logit margin {m:.4f}", flush=True)
        if best is None or m > best[0]:
            best = (m, seed, model)
    print(f"{label}: using seed {best[1]} (margin {best[0]:.4f})", flush=True)
    best[2].config.attend_seed = best[1]
    return best[2]


def train_qwen2_tokenizer(out_dir: Path):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=509, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator([CORPUS], trainer=trainer)
    tok.add_special_tokens(specials)  # appended after the BPE vocabulary, as in Qwen2
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, bos_token=None, clean_up_tokenization_spaces=False,
        model_max_length=512)
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out_dir)
    # Make the saved config say Qwen2 explicitly (what convert_hf_to_gguf and AutoTokenizer see).
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "Qwen2Tokenizer"
    cfg["add_bos_token"] = False
    cfg["errors"] = "replace"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    return len(tok.get_vocab())


def build_qwen2(work: Path) -> Path:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    d = work / "tiny-qwen2"
    d.mkdir(parents=True, exist_ok=True)
    n_vocab = train_qwen2_tokenizer(d)
    tokz = AutoTokenizer.from_pretrained(d)
    cfg = Qwen2Config(
        vocab_size=n_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu",
        bos_token_id=tokz.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokz.convert_tokens_to_ids("<|im_end|>"), torch_dtype="float32")
    model = pick_seed(lambda: Qwen2ForCausalLM(cfg), tokz, SEED, "tiny-qwen2")
    model.save_pretrained(d, safe_serialization=True)
    return d


def train_spm(work: Path, d: Path, **overrides):
    """SentencePiece BPE with byte fallback trained on CORPUS into d/tokenizer.model (Llama's ids:
    <unk>=0 <s>=1 </s>=2, dummy prefix; `overrides` changes them, e.g. for Gemma)."""
    import sentencepiece as spm
    corpus_file = work / "corpus.txt"
    corpus_file.write_text(CORPUS)
    args = dict(
        input=str(corpus_file), model_prefix=str(d / "tokenizer"), vocab_size=512, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, split_digits=True, allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False, normalization_rule_name="identity", add_dummy_prefix=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False, num_threads=1,
        seed_sentencepiece_size=100000, minloglevel=2)
    args.update(overrides)
    spm.SentencePieceTrainer.train(**args)
    return spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))


def spm_hf_tokenizer(d: Path, tokenizer_config: dict, template: str):
    """The HF tokenizer of d/tokenizer.model, saved into d with `template` as its chat template.
    transformers 5 builds the fast tokenizer from tokenizer.model when loading a directory that
    holds only it (constructing LlamaTokenizer(vocab_file=...) directly yields an empty vocab)."""
    from transformers import AutoTokenizer
    (d / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    for stale in ("tokenizer.json", "chat_template.jinja", "special_tokens_map.json"):
        (d / stale).unlink(missing_ok=True)
    tokz = AutoTokenizer.from_pretrained(d)
    tokz.chat_template = template
    tokz.save_pretrained(d)
    return tokz


def mark_special(d: Path, tokz, tokens):
    """Lists `tokens` as special in d/tokenizer_config.json's added_tokens_decoder (as real Gemma
    repos do; transformers 5 does not write it), so the converter types them CONTROL, as in real
    Gemma GGUFs, and llama.cpp matches them whole; HF already does."""
    cfg_path = d / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["added_tokens_decoder"] = {
        str(tokz.convert_tokens_to_ids(t)): {"content": t, "special": True, "lstrip": False,
                                             "rstrip": False, "normalized": False, "single_word": False}
        for t in tokens}
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))


def build_llama_spm(work: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    d = work / "tiny-llama-spm"
    d.mkdir(parents=True, exist_ok=True)
    sp = train_spm(work, d)
    tokz = spm_hf_tokenizer(d, {
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "legacy": True},
        LLAMA2_TEMPLATE)
    cfg = LlamaConfig(
        vocab_size=sp.get_piece_size(), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu",
        bos_token_id=1, eos_token_id=2, torch_dtype="float32")
    model = pick_seed(lambda: LlamaForCausalLM(cfg), tokz, SEED + 1000, "tiny-llama-spm")
    model.save_pretrained(d, safe_serialization=True)
    return d


# ---------------------------------------------------------------------------------------------
# Tiny models of the architectures added later (issue 9). Same recipe as above; each also gets
# the long prompt (LONG_PROMPT in make_golden.py), in the seed pick and in its golden.

def new_prompts():
    from make_golden import LONG_PROMPT, PROMPTS
    return PROMPTS + [LONG_PROMPT]


def build_qwen3(work: Path) -> Path:
    """qwen3: per-head RMSNorm on q and k (before RoPE), no q/k/v biases, head_dim given
    explicitly, tied embeddings (as Qwen3-0.6B/1.7B/4B)."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    d = work / "tiny-qwen3"
    d.mkdir(parents=True, exist_ok=True)
    n_vocab = train_qwen2_tokenizer(d)
    tokz = AutoTokenizer.from_pretrained(d)
    cfg = Qwen3Config(
        vocab_size=n_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu",
        attention_bias=False, use_sliding_window=False,
        bos_token_id=tokz.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokz.convert_tokens_to_ids("<|im_end|>"), torch_dtype="float32")
    model = pick_seed(lambda: Qwen3ForCausalLM(cfg), tokz, SEED + 2000, "tiny-qwen3", new_prompts())
    model.save_pretrained(d, safe_serialization=True)
    return d


LLAMA3_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def train_llama3_tokenizer(out_dir: Path, template: str, add_bos: bool):
    """Byte-level BPE with Llama 3's split regex (llama.cpp pre-tokenizer `llama-bpe`); Llama 3's
    specials, plus ChatML's, appended after the BPE vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eot_id|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=505, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator([CORPUS], trainer=trainer)
    tok.add_special_tokens(specials)
    bos = "<|begin_of_text|>"
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    eos = "<|eot_id|>" if add_bos else "<|im_end|>"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token="<|end_of_text|>",
        unk_token=None, clean_up_tokenization_spaces=False, model_max_length=512)
    fast.chat_template = template
    fast.save_pretrained(out_dir)
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["add_bos_token"] = add_bos
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    return len(tok.get_vocab())


def build_llama3(work: Path) -> Path:
    """Llama 3.x: byte-level BPE (`llama-bpe`), BOS added, tied embeddings (as Llama 3.2 1B/3B),
    RoPE base 500000 with the "llama3" frequency scaling. original_max_position_embeddings is 64
    so the three bands show at head_dim 16: wavelengths 6.3 (< 64/4: kept), 32.4 (between:
    smoothed), >= 167 (> 64/1: divided by factor 32). The converter writes the per-frequency
    divisors as `rope_freqs.weight`."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    d = work / "tiny-llama3"
    d.mkdir(parents=True, exist_ok=True)
    n_vocab = train_llama3_tokenizer(d, LLAMA3_TEMPLATE, add_bos=True)
    tokz = AutoTokenizer.from_pretrained(d)
    cfg = LlamaConfig(
        vocab_size=n_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
        rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu",
        bos_token_id=tokz.convert_tokens_to_ids("<|begin_of_text|>"),
        eos_token_id=tokz.convert_tokens_to_ids("<|eot_id|>"), torch_dtype="float32")
    model = pick_seed(lambda: LlamaForCausalLM(cfg), tokz, SEED + 3000, "tiny-llama3", new_prompts())
    model.save_pretrained(d, safe_serialization=True)
    return d


def build_smollm3(work: Path) -> Path:
    """smollm3: Llama with RoPE skipped in every 4th layer (no_rope_layers = [1, 1, 1, 0]; llama.cpp
    hard-codes that interval: no GGUF key), byte-level BPE (`llama-bpe`) with ChatML, no BOS,
    tied embeddings, RoPE base 5e6 (as SmolLM3-3B)."""
    from transformers import AutoTokenizer, SmolLM3Config, SmolLM3ForCausalLM

    d = work / "tiny-smollm3"
    d.mkdir(parents=True, exist_ok=True)
    n_vocab = train_llama3_tokenizer(d, CHATML_TEMPLATE, add_bos=False)
    tokz = AutoTokenizer.from_pretrained(d)
    cfg = SmolLM3Config(
        vocab_size=n_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rope_theta=5000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu",
        no_rope_layer_interval=4, use_sliding_window=False, attention_bias=False,
        pad_token_id=tokz.convert_tokens_to_ids("<|end_of_text|>"),
        bos_token_id=tokz.convert_tokens_to_ids("<|begin_of_text|>"),
        eos_token_id=tokz.convert_tokens_to_ids("<|im_end|>"), torch_dtype="float32")
    assert cfg.no_rope_layers == [1, 1, 1, 0], cfg.no_rope_layers
    model = pick_seed(lambda: SmolLM3ForCausalLM(cfg), tokz, SEED + 7000, "tiny-smollm3", new_prompts())
    model.save_pretrained(d, safe_serialization=True)
    return d


PHI3_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def phi3_tokenizer(work: Path, d: Path):
    # Phi-3's tokenizer is Llama 2's SentencePiece; its chat tokens (<|user|>, <|end|>, ...) are
    # added tokens past the SPM vocabulary. Here the SPM vocabulary is the tiny-llama-spm one and
    # the chat markers are plain text (no added tokens), which the converter handles the same way.
    sp = train_spm(work, d)
    tokz = spm_hf_tokenizer(d, {
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "legacy": True},
        PHI3_TEMPLATE)
    return sp, tokz


def build_phi3(work: Path) -> Path:
    """phi3: fused qkv_proj and gate_up_proj, NeoX RoPE, no scaling (Phi-3-mini-4k style)."""
    from transformers import Phi3Config, Phi3ForCausalLM

    d = work / "tiny-phi3"
    d.mkdir(parents=True, exist_ok=True)
    sp, tokz = phi3_tokenizer(work, d)
    cfg = Phi3Config(
        vocab_size=sp.get_piece_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        original_max_position_embeddings=512, rope_theta=10000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=False, hidden_act="silu", bos_token_id=1, eos_token_id=2,
        pad_token_id=None, sliding_window=None, torch_dtype="float32")
    model = pick_seed(lambda: Phi3ForCausalLM(cfg), tokz, SEED + 4000, "tiny-phi3", new_prompts())
    model.save_pretrained(d, safe_serialization=True)
    return d


# LongRoPE per-frequency divisors for the 6 rotated pairs (partial_rotary_factor 0.75 of head_dim 16)
PHI3_SHORT_FACTOR = [1.0, 1.0, 1.25, 1.5, 2.0, 3.0]
PHI3_LONG_FACTOR = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]


def build_phi3_longrope(work: Path) -> Path:
    """phi3 with LongRoPE ("longrope", Phi-3.5-mini / Phi-4-mini) and partial rotary 0.75 (Phi-4-mini),
    tied embeddings (Phi-4-mini). original_max_position_embeddings = 4, max 256: every sequence the
    goldens feed is longer than 4 tokens, so HF uses long_factor everywhere (HF picks per forward
    call by sequence length; llama.cpp picks long_factor when n_ctx > 4), and the attention factor
    is sqrt(1 + ln(256/4) / ln 4) = 2 (cos and sin multiplied by it)."""
    from transformers import Phi3Config, Phi3ForCausalLM

    d = work / "tiny-phi3-longrope"
    d.mkdir(parents=True, exist_ok=True)
    sp, tokz = phi3_tokenizer(work, d)
    cfg = Phi3Config(
        vocab_size=sp.get_piece_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        original_max_position_embeddings=4,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
                         "short_factor": PHI3_SHORT_FACTOR, "long_factor": PHI3_LONG_FACTOR,
                         "original_max_position_embeddings": 4},
        rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu", bos_token_id=1,
        eos_token_id=2, pad_token_id=None, sliding_window=None, torch_dtype="float32")
    model = pick_seed(lambda: Phi3ForCausalLM(cfg), tokz, SEED + 5000, "tiny-phi3-longrope", new_prompts())


GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
    "{% set msgs = messages[1:] %}{% else %}{% set first = '' %}{% set msgs = messages %}{% endif %}"
    "{% for m in msgs %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') + m['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def build_gemma2(work: Path) -> Path:
    """gemma2: embeddings scaled by sqrt(hidden), RMSNorm as (1 + w), post-attention and post-FFN
    norms, GELU(tanh) GLU, attention logit soft-capping (10) and final logit soft-capping (15)
    small enough to bite, layers alternating sliding (window 8: layers 0, 2) and global (1, 3),
    query_pre_attn_scalar = head_dim (what llama.cpp assumes for every size but 27B), tied
    embeddings. SentencePiece tokenizer as Gemma's: no dummy prefix, <pad>=0 <eos>=1 <bos>=2
    <unk>=3, <start_of_turn>/<end_of_turn> user-defined pieces."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    d = work / "tiny-gemma2"
    d.mkdir(parents=True, exist_ok=True)
    sp = train_spm(work, d, add_dummy_prefix=False, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                   pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
                   user_defined_symbols=["<start_of_turn>", "<end_of_turn>"])
    tokz = spm_hf_tokenizer(d, {
        "tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>",
        "unk_token": "<unk>", "pad_token": "<pad>", "add_bos_token": True, "add_eos_token": False},
        GEMMA_TEMPLATE)
    mark_special(d, tokz, ["<start_of_turn>", "<end_of_turn>"])
    cfg = Gemma2Config(
        vocab_size=sp.get_piece_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
        max_position_embeddings=512, rope_theta=10000.0, rms_norm_eps=1e-6,
        hidden_activation="gelu_pytorch_tanh", attn_logit_softcapping=10.0,
        final_logit_softcapping=15.0, sliding_window=8, tie_word_embeddings=True,
        pad_token_id=0, eos_token_id=1, bos_token_id=2, torch_dtype="float32")
    assert cfg.layer_types == ["sliding_attention", "full_attention"] * 2, cfg.layer_types
    model = pick_seed(lambda: Gemma2ForCausalLM(cfg), tokz, SEED + 6000, "tiny-gemma2", new_prompts())
    model.save_pretrained(d, safe_serialization=True)
    return d


# name: (builder, outtype, pre-tokenizer override)
MODELS = {
    "tiny-qwen2": (build_qwen2, "f32", "qwen2"),
    "tiny-llama-spm": (build_llama_spm, "f16", None),
    "tiny-qwen3": (build_qwen3, "f32", "qwen2"),
    "tiny-llama3": (build_llama3, "f32", "llama-bpe"),
    "tiny-smollm3": (build_smollm3, "f16", "llama-bpe"),
    "tiny-phi3": (build_phi3, "f16", None),
    "tiny-phi3-longrope": (build_phi3_longrope, "f16", None),
    "tiny-gemma2": (build_gemma2, "f16", None),
}


def convert(llama_cpp: Path, hf_dir: Path, out: Path, outtype: str, pre_override: str | None):
    """Runs llama.cpp's convert_hf_to_gguf.py in-process (so the pre-tokenizer can be overridden)."""
    if str(llama_cpp) not in sys.path:
        sys.path.insert(0, str(llama_cpp / "gguf-py"))
        sys.path.insert(0, str(llama_cpp))
    import importlib
    base = importlib.import_module("conversion.base")
    saved = []
    if pre_override is not None:
        for obj in vars(base).values():
            if isinstance(obj, type) and "get_vocab_base_pre" in obj.__dict__:
                saved.append((obj, obj.__dict__["get_vocab_base_pre"]))
                obj.get_vocab_base_pre = lambda self, tokenizer: pre_override
    conv = importlib.import_module("convert_hf_to_gguf")
    argv = sys.argv
    sys.argv = ["convert_hf_to_gguf.py", str(hf_dir), "--outfile", str(out), "--outtype", outtype]
    try:
        conv.main()
    finally:
        sys.argv = argv
        for obj, fn in saved:
            obj.get_vocab_base_pre = fn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", required=True, type=Path)
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache/attend/tiny-hf")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--only", nargs="*", choices=list(MODELS))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    args.work.mkdir(parents=True, exist_ok=True)
    names = args.only or list(MODELS)
    for name in names:
        np.random.seed(SEED)
        build, outtype, pre = MODELS[name]
        hf_dir = build(args.work)
        convert(args.llama_cpp, hf_dir, args.out / f"{name}.gguf", outtype, pre)
    for name in names:
        print(f"{name}.gguf", os.path.getsize(args.out / f"{name}.gguf"), "bytes")


if __name__ == "__main__":
    main()
