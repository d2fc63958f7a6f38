#!/usr/bin/env python3
"""Writes tokenizer_golden.json: HF transformers' token ids for varied strings on the test models,
and llama.cpp's (through llama-cpp-python, vocab only) where it is installed.

transformers converts the GGUF's tokenizer itself (AutoTokenizer.from_pretrained(dir, gguf_file=...)),
so this is an independent reference for tests/tokenizer.rs. transformers 5.x's GGUF reader imports
torch, so run it where torch is installed (CPU is enough); only the tokenizer is built.
Usage: HF_HUB_OFFLINE=1 python tokenizer_golden.py [models_dir]   (default ~/.cache/attend/models)
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from transformers import AutoTokenizer  # noqa: E402

MODELS = os.path.expanduser(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("ATTEND_CACHE", "~/.cache/attend"), "models"))
FILES = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]

TEXTS = [
    "Hello world",
    " Hello world",
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say it's fine, won't they? I'M SHOUTING",
    "1234567890 and 3.14159 and 1,000,000 and -42",
    "Numbers: 7 77 777 7777 77777",
    "def add(a, b):\n    return a + b\n",
    "fn main() {\n\tprintln!(\"{}\", 1 + 2);\n}\n",
    "for (int i = 0; i < n; ++i) { x[i] *= 2; }",
    "  two leading spaces",
    "trailing spaces   ",
    "multiple     spaces    inside",
    "tabs\tand\t\ttabs\t",
    "line one\nline two\n\nline four\n\n\n",
    "\r\nwindows\r\nnewlines\r\n",
    "   \n\t  \n ",
    "Emoji: 🙂👍🏽🎉 and 👨‍👩‍👧‍👦 family",
    "中文测试：你好，世界！",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 문장입니다.",
    "Ελληνικά και русский текст, العربية, עברית",
    "Café naïve résumé façade – “quotes” — dashes…",
    "Mixed: abc123def 中文english😀ok",
    "URL https://example.com/path?q=1&r=2#frag and email a.b@c.org",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text with <eos> inside and <|endoftext|> too",
    "JSON: {\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "Zero\u200bwidth and non\u00a0breaking and ideographic\u3000space",
    "Contractions: it's IT'S we'll WE'LL they've I'd you're 'tis",
    "Combining e\u0301 vs \u00e9, Arabic digits \u0663\u0664\u0665, Thai \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\n\n\n\n\n   \t\t\t  x \n \n",
    "<unused0> and <start_of_image> and [multimodal] markers",
    "a\u2581b \u2581\u2581 underscores__and--dashes",
    "$$$ ### @@@ !!! ??? ... ,,, ;;; ::: ~~~ ``` ''' \"\"\"",
    "x" * 300,
    "Snake_case_identifier and camelCaseIdentifier and SCREAMING_CASE_42",
]


def llama_cpp_tokenizer(path):
    """llama.cpp's tokenizer through llama-cpp-python (vocab only), when it is installed."""
    try:
        import llama_cpp
    except ImportError:
        print("llama_cpp not installed: no llama.cpp column", file=sys.stderr)
        return None
    m = llama_cpp.Llama(path, vocab_only=True, verbose=False)
    return lambda text, add_special: m.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)


def main():
    out = {}
    for f in FILES:
        path = os.path.join(MODELS, f)
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run tests/fetch-models.sh")
        tok = AutoTokenizer.from_pretrained(MODELS, gguf_file=f)
        lcpp = llama_cpp_tokenizer(path)
        cases = []
        for t in TEXTS:
            ids = tok(t, add_special_tokens=True)["input_ids"]
            plain = tok(t, add_special_tokens=False)["input_ids"]
            case = {
                "text": t,
                "ids_add_special": ids,
                "ids": plain,
                "decoded": tok.decode(plain, skip_special_tokens=False),
            }
            if lcpp is not None:
                case["llama_cpp_ids_add_special"] = lcpp(t, True)
                case["llama_cpp_ids"] = lcpp(t, False)
                if case["llama_cpp_ids"] != plain:
                    print(f"{f}: transformers and llama.cpp differ on {t!r}", file=sys.stderr)
            cases.append(case)
        out[f] = {"tokenizer_class": type(tok).__name__, "cases": cases}
        print(f, type(tok).__name__, len(cases), file=sys.stderr)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "tokenizer_golden.json"), "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
