#!/usr/bin/env python3
"""Writes tests/reference/quant_vectors.json: reference data for tests/quant.rs, made with gguf-py
(`pip install gguf numpy`; written against gguf 0.19.0), not with attend's own code.

Three kinds of case, all floats stored as little-endian f32 bit patterns in hex so nothing is lost
(NaN payloads, -0.0, subnormals):
  quantize   - deterministic inputs quantized with gguf-py's numpy quantizers (the types it has:
               F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), with gguf-py's dequantization of the result.
  dequantize - random block bytes (f16 scales kept finite) dequantized by gguf-py, for every type it
               reads, K-quants included: exercises every bit of the layouts.
  model      - slices of real rows from the SmolLM2 and Gemma 3 GGUFs in ~/.cache/attend/models/
               (raw bytes as stored, gguf-py's dequantization).

Run: python3 tests/reference/quant_vectors.py  (from the repository root)
"""

import json
import os
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as T
from gguf.quants import dequantize, quantize
from gguf.constants import GGML_QUANT_SIZES

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant_vectors.json")
MODELS = os.path.expanduser("~/.cache/attend/models")


def hexf(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint8).tobytes().hex()


def hexb(a):
    return np.ascontiguousarray(a).view(np.uint8).tobytes().hex()


def inputs(n, rng):
    """Named deterministic input vectors of length n (a multiple of 32)."""
    normal = rng.standard_normal(n).astype(np.float32)
    out = {
        "normal": normal,
        "zeros": np.zeros(n, np.float32),
        "constant": np.full(n, 0.37, np.float32),
        "constant_negative": np.full(n, -2.5, np.float32),
        "outlier": np.where(np.arange(n) == 5, np.float32(1000.0), normal * np.float32(0.01)).astype(np.float32),
        "tiny": (normal * np.float32(1e-6)).astype(np.float32),
        "subnormal_scale": (normal * np.float32(1e-9)).astype(np.float32),
        "negatives_only": -np.abs(normal) - np.float32(0.1),
        "positives_only": np.abs(normal) + np.float32(3.0),
        # small integers: many values fall exactly on rounding boundaries
        "integers": (rng.integers(-8, 9, n)).astype(np.float32),
        "halves": (rng.integers(-16, 17, n) * 0.5).astype(np.float32),
        "wide_range": (normal * np.float32(10.0) ** rng.integers(-3, 4, n)).astype(np.float32),
    }
    return out


def float_specials():
    bits = [
        0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x7F800000, 0xFF800000,  # 0, -0, ±1, ±inf
        0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0xFF812345, 0x7FFFFFFF,  # NaNs (signalling too)
        0x7F7FFFFF, 0xFF7FFFFF, 0x00000001, 0x807FFFFF, 0x00800000,  # max, min subnormal/normal
        0x3F808000, 0x3F818000, 0x3F80C000, 0x3F817FFF, 0x7F7F8000,  # bf16 ties and near-ties, overflow
        0x477FF000, 0x477FEFFF, 0x47800000, 0x33800000, 0x33000000, 0x33000001,  # f16 max tie, overflow, subnormal ties
        0x387FC000, 0x38800000, 0x3A800800, 0x3A801000, 0x3A801800,  # f16 subnormal/normal boundary, ties
        0x40490FDB, 0xC2F6E979,
    ]
    a = np.array(bits, np.uint32)
    pad = (-len(a)) % 32
    rng = np.random.default_rng(7)
    a = np.concatenate([a, rng.integers(0, 2**32, pad + 64, dtype=np.uint64).astype(np.uint32)])
    return a.view(np.float32)


def quantize_cases():
    cases = []
    rng = np.random.default_rng(1234)
    for ty in [T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.F16, T.BF16]:
        n = 64
        vecs = inputs(n, rng)
        vecs["normal_4blocks"] = rng.standard_normal(128).astype(np.float32)
        if ty in (T.F16, T.BF16):
            vecs = {"normal": vecs["normal"], "wide_range": vecs["wide_range"],
                    "subnormal_scale": vecs["subnormal_scale"], "specials": float_specials()}
        for name, x in vecs.items():
            with np.errstate(all="ignore"):
                q = quantize(x, ty)
                y = dequantize(q, ty)
            cases.append({"kind": "quantize", "type": ty.name, "name": name,
                          "input": hexf(x), "bytes": hexb(q), "values": hexf(y)})
    return cases


def random_blocks(ty, nblocks, rng):
    """Random block bytes with every f16 field finite and modest (|v| < 2)."""
    bs, ts = GGML_QUANT_SIZES[ty]
    raw = rng.integers(0, 256, (nblocks, ts), dtype=np.uint8)
    f16_fields = {
        T.Q8_0: [0], T.Q4_0: [0], T.Q5_0: [0], T.Q4_1: [0, 2], T.Q5_1: [0, 2],
        T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    }[ty]
    for off in f16_fields:
        v = (rng.standard_normal(nblocks) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = v.view(np.uint8).reshape(nblocks, 2)
    return raw.reshape(-1)


def dequantize_cases():
    cases = []
    rng = np.random.default_rng(99)
    for ty in [T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]:
        bs, ts = GGML_QUANT_SIZES[ty]
        nblocks = 4 if bs == 32 else 2
        raw = random_blocks(ty, nblocks, rng)
        y = dequantize(raw, ty)
        cases.append({"kind": "dequantize", "type": ty.name, "name": "random_blocks",
                      "bytes": hexb(raw), "values": hexf(y)})
    return cases


def model_cases():
    picks = {
        "SmolLM2-135M-Instruct.Q4_1.gguf": ["token_embd.weight", "blk.0.ffn_down.weight", "blk.3.attn_q.weight"],
        "gemma-3-270m-q4_k_m.gguf": ["blk.0.attn_output.weight", "blk.0.ffn_down.weight", "blk.0.attn_q.weight",
                                     "blk.0.attn_v.weight", "token_embd.weight"],
    }
    cases = []
    for file, names in picks.items():
        path = os.path.join(MODELS, file)
        if not os.path.exists(path):
            sys.exit(f"missing {path}: download it as /work/shared/ENVIRONMENT.md says")
        reader = GGUFReader(path)
        tensors = {t.name: t for t in reader.tensors}
        for name in names:
            t = tensors[name]
            ty = t.tensor_type
            bs, ts = GGML_QUANT_SIZES[ty]
            rows = np.asarray(t.data)  # (n_rows, row_bytes) for quantized types
            ncols = int(t.shape[0])
            # at most 512 values of each row keep the JSON small; rows are block-aligned
            take = min(ncols, 512)
            for r in (0, rows.shape[0] // 2 + 1):
                raw = rows[r, : take // bs * ts]
                y = dequantize(raw, ty)
                cases.append({"kind": "model", "type": ty.name, "name": f"{file}:{name}:row{r}[:{take}]",
                              "bytes": hexb(raw), "values": hexf(y)})
    return cases


def main():
    cases = quantize_cases() + dequantize_cases() + model_cases()
    with open(OUT, "w") as f:
        f.write('{"generator": "tests/reference/quant_vectors.py with gguf-py %s", "cases": [\n'
                % __import__("importlib.metadata").metadata.version("gguf"))
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {len(cases)} cases, {os.path.getsize(OUT)} bytes to {OUT}")


if __name__ == "__main__":
    main()
