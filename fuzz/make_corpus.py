"""Writes the committed seed corpus of the fuzz targets (fuzz/corpus/*): two tiny GGUF models
(llama and qwen2 tensor layouts, a few KB each), texts for the tokenizers and chat templates.
Run with the reference venv (tests/reference/requirements.txt has `gguf`)."""
import os, sys
import numpy as np
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))

def model(arch, path, qk_norm=False):
    w = gguf.GGUFWriter(path, arch)
    d, ff, heads, kv, vocab = 8, 16, 2, 1, 6
    w.add_block_count(1)
    w.add_context_length(32)
    w.add_embedding_length(d)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "c", "ab", "<s>", "</s>"])
    w.add_token_types([1, 1, 1, 1, 3, 3])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(4)
    w.add_eos_token_id(5)
    w.add_chat_template("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
    hd = d // heads
    rng = np.random.default_rng(0)
    t = lambda *s: rng.standard_normal(s).astype(np.float32)
    w.add_tensor("token_embd.weight", t(vocab, d))
    w.add_tensor("output_norm.weight", t(d))
    w.add_tensor("blk.0.attn_norm.weight", t(d))
    w.add_tensor("blk.0.attn_q.weight", t(heads * hd, d))
    w.add_tensor("blk.0.attn_k.weight", t(kv * hd, d))
    w.add_tensor("blk.0.attn_v.weight", t(kv * hd, d))
    w.add_tensor("blk.0.attn_output.weight", t(d, heads * hd))
    w.add_tensor("blk.0.ffn_norm.weight", t(d))
    w.add_tensor("blk.0.ffn_gate.weight", t(ff, d))
    w.add_tensor("blk.0.ffn_up.weight", t(ff, d))
    w.add_tensor("blk.0.ffn_down.weight", t(d, ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

def put(target, name, data):
    with open(os.path.join(HERE, "corpus", target, name), "wb") as f:
        f.write(data)

for arch in ["llama", "qwen2"]:
    p = os.path.join(HERE, "corpus", "gguf_header", f"tiny-{arch}.gguf")
    model(arch, p)
    data = open(p, "rb").read()
    put("gguf_stream", f"tiny-{arch}-0", bytes([3, 0]) + data)
    put("gguf_stream", f"tiny-{arch}-1", bytes([0, 1]) + data)
    put("gguf_stream", f"tiny-{arch}-2", bytes([200, 2]) + data[:400])
    put("config", f"tiny-{arch}", bytes([32, 0]) + data)

for i, text in enumerate([
    "Hello world! How are you?",
    "<|im_start|>user\nhi<|im_end|>\n<s></s>",
    "  leading spaces\ttabs\n\nnewlines   ",
    "héllo wörld 日本語 🙂 \u0000 \uFFFD",
    "1234567890 3.14 x=y+z",
]):
    put("tokenizer", f"text-{i}", text.encode())

chatml = open(os.path.join(HERE, "..", "src", "chat", "templates", "chatml.jinja")).read()
gemma = open(os.path.join(HERE, "..", "src", "chat", "templates", "gemma.jinja")).read()
for i, src in enumerate([
    chatml,
    gemma,
    "{% set ns = namespace(s='') %}{% for m in messages %}{% set ns.s = ns.s ~ m.content %}{% endfor %}{{ ns.s|upper }}",
    "{{ messages|tojson(indent=2) }}{{ 'x' * 3 }}{{ messages[0].content|replace('s', 'ss') }}",
    "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ n }}{% endif %}{% endmacro %}{{ f(5) }}{{ ', '.join(['a', 'b']) }}",
    "{{ raise_exception('no') if messages|length > 9 }}{{ '%s-%d'|format('a', 1) }}{{ 'a\\nb'|indent(2) }}",
]):
    put("chat_template", f"template-{i}", src.encode() + b"\0" + b"content <|im_end|>")
print("ok")
