//! GGUF reader tests (native): real models against dumps made by the PyPI `gguf` package
//! (tests/reference/gguf/gguf_dump.py), the push parser against lazy file reads, split models, and
//! broken input (errors, never panics). Models come from tests/fetch-models.sh.
#![cfg(not(target_arch = "wasm32"))]

mod broken;
mod reference;
mod streaming;

use std::path::PathBuf;

use attend::gguf::Value;

/// Path of a test model; fails (never skips) when it has not been downloaded.
pub fn model(name: &str) -> PathBuf {
    let cache = std::env::var_os("ATTEND_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/attend")
        });
    let p = cache.join("models").join(name);
    assert!(
        p.is_file(),
        "test model {} is missing: run tests/fetch-models.sh first",
        p.display()
    );
    p
}

pub fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/gguf")
}

pub const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
}

/// FNV-1a 64, incremental (the reference dumps use it too).
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xCBF2_9CE4_8422_2325)
    }
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
}

/// Python's `json.dumps(s)` (ensure_ascii) for a string.
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::U8(_) => "UINT8",
        Value::I8(_) => "INT8",
        Value::U16(_) => "UINT16",
        Value::I16(_) => "INT16",
        Value::U32(_) => "UINT32",
        Value::I32(_) => "INT32",
        Value::U64(_) => "UINT64",
        Value::I64(_) => "INT64",
        Value::F32(_) => "FLOAT32",
        Value::F64(_) => "FLOAT64",
        Value::Bool(_) => "BOOL",
        Value::String(_) => "STRING",
        Value::Array(_) => "ARRAY",
    }
}

/// One value, rendered exactly as gguf_dump.py's `render`.
pub fn render(v: &Value) -> String {
    match v {
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => format!("\"f32:{:08x}\"", x.to_bits()),
        Value::F64(x) => format!("\"f64:{:016x}\"", x.to_bits()),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => json_str(s),
        Value::Array(items) if items.is_empty() => "{\"len\": 0}".into(),
        Value::Array(items) => {
            let r: Vec<String> = items.iter().map(render).collect();
            let mut h = Fnv::new();
            for i in &r {
                h.update(i.as_bytes());
                h.update(b"\n");
            }
            let n = r.len();
            format!(
                "{{\"elem\": \"{}\", \"len\": {n}, \"fnv\": \"{:016x}\", \"head\": [{}], \"tail\": [{}]}}",
                type_name(&items[0]),
                h.0,
                r[..n.min(3)].join(", "),
                r[n - n.min(3)..].join(", ")
            )
        }
    }
}

/// The whole header, rendered exactly as gguf_dump.py's `document`.
pub fn document(g: &attend::gguf::Gguf) -> String {
    let mut lines = vec![
        format!(
            "{{\"version\": {}, \"alignment\": {}, \"data_offset\": {},",
            g.version, g.alignment, g.data_offsets[0]
        ),
        "\"metadata\": [".to_string(),
    ];
    let kvs: Vec<String> = g
        .metadata
        .iter()
        .map(|(k, v)| format!("[{}, \"{}\", {}]", json_str(k), type_name(v), render(v)))
        .collect();
    lines.push(kvs.join(",\n"));
    lines.push("],\n\"tensors\": [".into());
    let ts: Vec<String> = g
        .tensors
        .iter()
        .map(|t| {
            let dims: Vec<String> = t.dims.iter().map(|d| d.to_string()).collect();
            format!(
                "[{}, \"{}\", [{}], {}, {}]",
                json_str(&t.name),
                t.ty.name(),
                dims.join(", "),
                t.offset,
                t.byte_size()
            )
        })
        .collect();
    lines.push(ts.join(",\n"));
    lines.push("]}".into());
    lines.join("\n") + "\n"
}

/// Text equality with the first differing line in the message.
pub fn assert_same_text(got: &str, want: &str, what: &str) {
    if got == want {
        return;
    }
    for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "{what}: line {} differs", i + 1);
    }
    panic!(
        "{what}: {} lines vs {} expected",
        got.lines().count(),
        want.lines().count()
    );
}
