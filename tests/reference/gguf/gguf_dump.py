#!/usr/bin/env python3
"""Reference dumps for tests/gguf.rs, made with the PyPI `gguf` package (pip install gguf numpy).

  gguf_dump.py dump MODEL.gguf > OUT.json   metadata + tensor infos of a model, read by gguf.GGUFReader
  gguf_dump.py fixtures DIR                 small files written by gguf.GGUFWriter: all_types.gguf
                                            (+ all_types.json from the values written), be.gguf
                                            (big-endian) and split-0000i-of-00003.gguf

The JSON is written in a fixed layout (one item per line) that tests/gguf.rs renders identically
from attend's parser and compares as text. Floats are given as bit patterns ("f32:3f800000") so no
decimal formatting is involved; long arrays as length, FNV-1a 64 hash of all items, first and last
three items.
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFValueType as T


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def render(vtype, value, sub=None):
    """One value. `sub(item) -> (type, value, sub)` describes array items."""
    if vtype == T.STRING:
        return json.dumps(value)  # ensure_ascii: the Rust side escapes the same way
    if vtype == T.BOOL:
        return "true" if value else "false"
    if vtype == T.FLOAT32:
        return '"f32:%08x"' % struct.unpack("<I", struct.pack("<f", value))[0]
    if vtype == T.FLOAT64:
        return '"f64:%016x"' % struct.unpack("<Q", struct.pack("<d", value))[0]
    if vtype == T.ARRAY:
        items = [render(*sub(x)) for x in value]
        if not items:
            return '{"len": 0}'
        elem = sub(value[0])[0].name
        digest = fnv1a64("".join(i + "\n" for i in items).encode())
        return '{"elem": "%s", "len": %d, "fnv": "%s", "head": [%s], "tail": [%s]}' % (
            elem, len(items), digest, ", ".join(items[:3]), ", ".join(items[-3:]))
    return str(int(value))


def document(version, alignment, data_offset, kvs, tensors):
    lines = ['{"version": %d, "alignment": %d, "data_offset": %d,' % (version, alignment, data_offset),
             '"metadata": [']
    lines.append(",\n".join("[%s, \"%s\", %s]" % (json.dumps(k), t.name, v) for k, t, v in kvs))
    lines.append('],\n"tensors": [')
    lines.append(",\n".join("[%s, \"%s\", [%s], %d, %d]" % (json.dumps(n), ty, ", ".join(map(str, d)), o, nb)
                            for n, ty, d, o, nb in tensors))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def dump(path):
    r = gguf.GGUFReader(path)
    kvs = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        t = f.types[0]
        if t == T.ARRAY:
            if len(f.types) > 2:
                raise SystemExit(f"{key}: nested arrays are not dumped from files")
            sub_t = f.types[-1] if len(f.types) > 1 else T.UINT8
            v = render(t, f.contents(), lambda x: (sub_t, x, None))
        else:
            v = render(t, f.contents())
        kvs.append((key, t, v))
    version = int(r.fields["GGUF.version"].parts[0][0])
    tensors = [(t.name, t.tensor_type.name, [int(d) for d in t.shape], int(t.data_offset - r.data_offset),
                int(t.n_bytes)) for t in r.tensors]
    sys.stdout.write(document(version, int(r.alignment), int(r.data_offset), kvs, tensors))




def fixtures(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    nested = [[1, 2, 3], [4], [5, 6]]
    strings = ["", "plain", "quote \" backslash \\ newline \n tab \t", "ünïcödé ✓ 😀", "\x01\x7f"]
    scalars = [
        ("t.u8", T.UINT8, 200), ("t.i8", T.INT8, -100), ("t.u16", T.UINT16, 60000),
        ("t.i16", T.INT16, -30000), ("t.u32", T.UINT32, 4000000000), ("t.i32", T.INT32, -2000000000),
        ("t.f32", T.FLOAT32, float(np.float32(3.14159))), ("t.bool", T.BOOL, True),
        ("t.string", T.STRING, "hello ✓"), ("t.u64", T.UINT64, 2**63 + 5), ("t.i64", T.INT64, -2**62),
        ("t.f64", T.FLOAT64, 2.718281828459045),
    ]
    w = gguf.GGUFWriter(out / "all_types.gguf", "testarch")
    w.add_custom_alignment(64)  # non-default alignment
    kvs = [("general.architecture", T.STRING, render(T.STRING, "testarch")),
           ("general.alignment", T.UINT32, render(T.UINT32, 64))]
    for key, t, v in scalars:
        w.add_key_value(key, v, t)
        kvs.append((key, t, render(t, v)))
    arrays = [
        ("a.i32", [-1, 0, 1, 2, 3, 2**31 - 1], T.INT32),
        ("a.f32", [float(np.float32(x)) for x in (0.5, -1.25, 1e-5, 3e38)], T.FLOAT32),
        ("a.strings", strings, T.STRING),
        ("a.bool", [True, False, True], T.BOOL),
    ]
    for key, v, t in arrays:
        w.add_key_value(key, v, T.ARRAY, sub_type=t)
        kvs.append((key, T.ARRAY, render(T.ARRAY, v, lambda x, t=t: (t, x, None))))
    w.add_key_value("a.nested", nested, T.ARRAY, sub_type=T.ARRAY)
    inner = lambda x: (T.INT32, x, None)  # the writer picks INT32 for python ints
    kvs.append(("a.nested", T.ARRAY, render(T.ARRAY, nested, lambda x: (T.ARRAY, x, inner))))
    rng = np.random.default_rng(7)
    tensors = [
        ("w.f32", rng.standard_normal((3, 5)).astype(np.float32), None),
        ("w.q8", rng.integers(0, 256, (2, 68), dtype=np.uint8), gguf.GGMLQuantizationType.Q8_0),
        ("w.f16", rng.standard_normal(7).astype(np.float16), None),
    ]
    for name, arr, raw in tensors:
        w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = gguf.GGUFReader(out / "all_types.gguf")
    tinfo = [(t.name, t.tensor_type.name, [int(d) for d in t.shape], int(t.data_offset - r.data_offset),
              int(t.n_bytes)) for t in r.tensors]
    (out / "all_types.json").write_text(document(3, 64, int(r.data_offset), kvs, tinfo))

    be = gguf.GGUFWriter(out / "be.gguf", "testarch", endianess=gguf.GGUFEndian.BIG)
    be.add_tensor("w", np.arange(4, dtype=np.float32))
    be.write_header_to_file()
    be.write_kv_data_to_file()
    be.write_tensors_to_file()
    be.close()

    sp = gguf.GGUFWriter(out / "split.gguf", "testarch", split_max_tensors=2)
    sp.add_string("general.name", "split test")
    for i in range(5):
        sp.add_tensor(f"blk.{i}.w", (np.arange(8 + i, dtype=np.float32) + 100 * i))
    sp.write_header_to_file()
    sp.write_kv_data_to_file()
    sp.write_tensors_to_file()
    sp.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        dump(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "fixtures":
        fixtures(sys.argv[2])
    else:
        raise SystemExit(__doc__)
