#!/usr/bin/env python3
"""Writes tests/reference/quant_vectors.json: reference data for tests/quant.rs, made with gguf-py
(`pip install gguf numpy`; written against gguf 0.19.0), not with attend's own code.

Three kinds of case, all floats stored as little-endian f32 bit patterns in hex so nothing is lost
(NaN payloads, -0.0, subnormals):
  quantize   - deterministic inputs quantized with gguf-py's numpy quantizers (the types it has:
               F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), with gguf-py's dequantization of the result.
  dequantize - random block bytes (f16 scales kept finite) dequantized by gguf-py, for every type it
               reads, K-quants and IQ4_NL/IQ4_XS included: exercises every bit of the layouts.
               (IQ4_NL/IQ4_XS appear only here: attend reads them but does not quantize to them.)
  model      - slices of real rows from the SmolLM2 and Gemma 3 GGUFs in ~/.cache/attend/models/
               (raw bytes as stored, gguf-py's dequantization).
  ggml       - inputs quantized by ggml's own C reference (`quantize_row_*_ref` in ggml-quants.c,
               every type attend quantizes, K-quants included), one case per input holding the
               bytes of each type. Needs a ggml source tree: GGML_SRC=/path/to/ggml (checked with
               github.com/ggml-org/ggml d99724f2b141fed9e1a9f402213506c081433465). ggml-quants.c is
               compiled here with `gcc -O2 -ffp-contract=off` (no FMA contraction, i.e. plain C
               float semantics) into a throwaway shared library called through ctypes.

Run: GGML_SRC=/path/to/ggml python3 tests/reference/quant_vectors.py  (from the repository root)
"""

import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile

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
        T.IQ4_NL: [0], T.IQ4_XS: [0],
    }[ty]
    for off in f16_fields:
        v = (rng.standard_normal(nblocks) * 0.05).astype(np.float16)
        raw[:, off:off + 2] = v.view(np.uint8).reshape(nblocks, 2)
    return raw.reshape(-1)


def dequantize_cases():
    cases = []
    rng = np.random.default_rng(99)
    # new types go last: the shared rng keeps the earlier types' cases unchanged
    for ty in [T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K,
               T.IQ4_NL, T.IQ4_XS]:
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
            # at most 256 values of each row keep the JSON small; rows are block-aligned
            take = min(ncols, 256)
            for r in (0, rows.shape[0] // 2 + 1):
                raw = rows[r, : take // bs * ts]
                y = dequantize(raw, ty)
                cases.append({"kind": "model", "type": ty.name, "name": f"{file}:{name}:row{r}[:{take}]",
                              "bytes": hexb(raw), "values": hexf(y)})
    return cases


GGML_STUBS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
/* the _ref quantizers never reach these; they only satisfy the linker */
void ggml_abort(const char * file, int line, const char * fmt, ...) { fprintf(stderr, "ggml_abort %s:%d\n", file, line); abort(); }
size_t ggml_row_size(int type, long long ne) { (void)type; (void)ne; abort(); }
size_t ggml_type_size(int type) { (void)type; abort(); }
const char * ggml_type_name(int type) { (void)type; return "?"; }
"""

GGML_REF = {  # type -> ggml function
    T.Q8_0: "quantize_row_q8_0_ref", T.Q8_1: "quantize_row_q8_1_ref", T.Q4_0: "quantize_row_q4_0_ref",
    T.Q4_1: "quantize_row_q4_1_ref", T.Q5_0: "quantize_row_q5_0_ref", T.Q5_1: "quantize_row_q5_1_ref",
    T.Q2_K: "quantize_row_q2_K_ref", T.Q3_K: "quantize_row_q3_K_ref", T.Q4_K: "quantize_row_q4_K_ref",
    T.Q5_K: "quantize_row_q5_K_ref", T.Q6_K: "quantize_row_q6_K_ref", T.Q8_K: "quantize_row_q8_K_ref",
}


def build_ggml(src, tmp, flags):
    so = os.path.join(tmp, "libggmlq%d.so" % abs(hash(tuple(flags))))
    stubs = os.path.join(tmp, "stubs.c")
    with open(stubs, "w") as f:
        f.write(GGML_STUBS)
    inc = [f"-I{src}/include", f"-I{src}/src", f"-I{src}/src/ggml-cpu"]
    subprocess.run(["gcc", *flags, "-fPIC", "-shared", "-DNDEBUG", *inc, f"{src}/src/ggml-quants.c", stubs,
                    "-o", so, "-lm"], check=True)
    return ctypes.CDLL(so)


def ggml_quantize(lib, ty, x):
    bs, ts = GGML_QUANT_SIZES[ty]
    if ty == T.Q8_1:
        ts = 36  # ggml's block_q8_1 holds d and s as f16 (gguf-py 0.19 still lists the old 40)
    x = np.ascontiguousarray(x, np.float32)
    out = np.zeros(len(x) // bs * ts, np.uint8)
    fn = getattr(lib, GGML_REF[ty])
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(x.ctypes.data, out.ctypes.data, len(x))
    return out


def ggml_cases():
    src = os.environ.get("GGML_SRC")
    if not src:
        sys.exit("set GGML_SRC to a ggml source tree (see the docstring)")
    quants_c = open(f"{src}/src/ggml-quants.c", "rb").read()
    rng = np.random.default_rng(4321)
    vecs = inputs(256, rng)
    vecs["normal_4blocks"] = rng.standard_normal(1024).astype(np.float32)
    # a real row: quantizing dequantized Q4_K weights exercises near-fixed-point searches
    reader = GGUFReader(os.path.join(MODELS, "gemma-3-270m-q4_k_m.gguf"))
    t = next(t for t in reader.tensors if t.name == "blk.0.attn_output.weight")
    vecs["gemma_attn_output_row7"] = dequantize(np.asarray(t.data)[7, : 2 * 144], T.Q4_K)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_ggml(src, tmp, ["-O2", "-ffp-contract=off"])
        fma = build_ggml(src, tmp, ["-O2", "-march=native", "-ffp-contract=fast"])
        fma_diff = {}
        for name, x in vecs.items():
            case = {"kind": "ggml", "type": "-", "name": name, "input": hexf(x)}
            for ty in GGML_REF:
                q = ggml_quantize(lib, ty, x)
                case[ty.name] = hexb(q)
                qf = ggml_quantize(fma, ty, x)
                fma_diff[ty.name] = fma_diff.get(ty.name, 0) + int((q != qf).any())
            cases.append(case)
    print("ggml-quants.c sha256", hashlib.sha256(quants_c).hexdigest())
    print("inputs whose bytes change in a -march=native -ffp-contract=fast build (FMA):", fma_diff)
    return cases, hashlib.sha256(quants_c).hexdigest()


def main():
    gcases, sha = ggml_cases()
    cases = quantize_cases() + dequantize_cases() + model_cases() + gcases
    with open(OUT, "w") as f:
        f.write('{"generator": "tests/reference/quant_vectors.py with gguf-py %s and ggml-quants.c sha256 %s",'
                ' "cases": [\n' % (__import__("importlib.metadata").metadata.version("gguf"), sha))
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {len(cases)} cases, {os.path.getsize(OUT)} bytes to {OUT}")


if __name__ == "__main__":
    main()
