//! CPU quantizers/dequantizers against reference data nobody here wrote
//! (tests/reference/quant_vectors.json, made by tests/reference/quant_vectors.py with gguf-py and,
//! where present, ggml's own C reference), plus round-trip error bounds and bad-input handling.
//!
//! Exactness: every comparison with the reference files is bit-exact (f32 bit patterns, block
//! bytes), except F16 of a NaN input, where only "a NaN of the same sign" is required: numpy keeps
//! signalling payloads, ggml's F16C and generic paths quiet or canonicalise them, so no single
//! answer exists.
#![cfg(not(target_arch = "wasm32"))] // native only: plain #[test]s over a bundled JSON file
#![allow(clippy::needless_range_loop)]

use attend::quant::{dequantize, quantize, GgmlType, QK_K};

const VECTORS: &str = include_str!("reference/quant_vectors.json");

/// One reference case: every field in the file is a string.
struct Case {
    fields: Vec<(String, String)>,
}

impl Case {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn field(&self, key: &str) -> &str {
        self.get(key).unwrap_or_else(|| panic!("case lacks {key}"))
    }
    fn label(&self) -> String {
        format!(
            "{} {} {}",
            self.field("kind"),
            self.field("type"),
            self.field("name")
        )
    }
    fn ty(&self) -> GgmlType {
        ggml_type(self.field("type"))
    }
}

/// The file holds one flat JSON object per line, `{"key":"value",...}`, with no escapes inside
/// strings (hex and plain names only), so a small scanner reads it without a JSON dependency.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for line in VECTORS.lines().filter(|l| l.starts_with("{\"kind\"")) {
        let mut fields = Vec::new();
        let strings: Vec<&str> = line.split('"').collect();
        // split on quotes: odd indices are string contents; keys are followed by ':'
        let mut i = 1;
        while i + 2 < strings.len() {
            assert_eq!(
                strings[i + 1],
                ":",
                "unexpected layout near {:?}",
                strings[i]
            );
            fields.push((strings[i].to_string(), strings[i + 2].to_string()));
            i += 4;
        }
        out.push(Case { fields });
    }
    assert!(
        out.len() > 50,
        "reference file has only {} cases",
        out.len()
    );
    out
}

fn ggml_type(name: &str) -> GgmlType {
    use GgmlType::*;
    [
        F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, IQ4NL,
        IQ4XS,
    ]
    .into_iter()
    .find(|t| t.name() == name)
    .unwrap_or_else(|| panic!("unknown type {name}"))
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn floats(s: &str) -> Vec<f32> {
    unhex(s)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Bit-exact float comparison (so -0.0 ≠ 0.0 and NaN payloads count); names the first mismatch.
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad = got
        .iter()
        .zip(want)
        .filter(|(g, w)| g.to_bits() != w.to_bits())
        .count();
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: {bad} of {} differ; first at {i}: got {:e} ({:08x}) want {:e} ({:08x})",
            got.len(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

fn assert_bytes(what: &str, got: &[u8], want: &[u8], ty: GgmlType) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        let bb = ty.block_bytes();
        let diff = (0..got.len()).filter(|&i| got[i] != want[i]).count();
        panic!("{what}: {diff} bytes differ; first at byte {i} (block {}, offset {}): got {:02x} want {:02x}\n got block  {:02x?}\n want block {:02x?}",
            i / bb, i % bb, got[i], want[i], &got[i / bb * bb..(i / bb + 1) * bb], &want[i / bb * bb..(i / bb + 1) * bb]);
    }
}

/// F16 bytes, with NaN inputs compared by NaN-ness and sign only (see the file comment).
fn assert_f16_bytes(what: &str, input: &[f32], got: &[u8], want: &[u8]) {
    for (i, x) in input.iter().enumerate() {
        let g = u16::from_le_bytes([got[2 * i], got[2 * i + 1]]);
        let w = u16::from_le_bytes([want[2 * i], want[2 * i + 1]]);
        let ok = if x.is_nan() {
            g & 0x7c00 == 0x7c00 && g & 0x03ff != 0 && g & 0x8000 == w & 0x8000
        } else {
            g == w
        };
        assert!(
            ok,
            "{what}: element {i} ({:08x}): got {g:04x} want {w:04x}",
            x.to_bits()
        );
    }
}

#[test]
fn quantize_matches_gguf_py_bit_exact() {
    let mut checked = 0;
    for c in cases().iter().filter(|c| c.field("kind") == "quantize") {
        let (ty, input, want) = (c.ty(), floats(c.field("input")), unhex(c.field("bytes")));
        let got = quantize(ty, &input).unwrap();
        if ty == GgmlType::F16 {
            assert_f16_bytes(&c.label(), &input, &got, &want);
        } else {
            assert_bytes(&c.label(), &got, &want, ty);
        }
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} quantize cases");
}

#[test]
fn dequantize_matches_gguf_py_bit_exact() {
    let mut per_kind = std::collections::BTreeMap::new();
    for c in cases().into_iter().filter(|c| c.field("kind") != "ggml") {
        let (ty, bytes, want) = (c.ty(), unhex(c.field("bytes")), floats(c.field("values")));
        let mut got = dequantize(ty, &bytes, want.len()).unwrap();
        if ty == GgmlType::F16 {
            // a NaN half may come back quiet (half, F16C) or as stored (numpy): keep sign + NaN-ness
            for (g, w) in got.iter_mut().zip(&want) {
                if g.is_nan() && w.is_nan() && g.is_sign_negative() == w.is_sign_negative() {
                    *g = *w;
                }
            }
        }
        assert_bits(&c.label(), &got, &want);
        *per_kind.entry(c.field("kind").to_string()).or_insert(0) += 1;
    }
    // the three sources must all be present: synthetic, random blocks, real model rows
    assert!(
        per_kind.get("quantize").copied().unwrap_or(0) >= 60,
        "{per_kind:?}"
    );
    assert!(
        per_kind.get("dequantize").copied().unwrap_or(0) >= 10,
        "{per_kind:?}"
    );
    assert!(
        per_kind.get("model").copied().unwrap_or(0) >= 16,
        "{per_kind:?}"
    );
}

/// Our quantizers against ggml's C `quantize_row_*_ref`, compiled without FMA contraction: every
/// type we quantize (Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K), on
/// edge-case and random inputs and on a real (dequantized) Gemma row.
#[test]
fn quantize_matches_ggml_c_reference_bit_exact() {
    let mut checked = std::collections::BTreeMap::new();
    for c in cases().iter().filter(|c| c.field("kind") == "ggml") {
        let input = floats(c.field("input"));
        for (key, hex) in c.fields.iter().skip(4) {
            let ty = ggml_type(key);
            let got = quantize(ty, &input).unwrap();
            assert_bytes(
                &format!("ggml {key} {}", c.field("name")),
                &got,
                &unhex(hex),
                ty,
            );
            *checked.entry(key.clone()).or_insert(0) += 1;
        }
    }
    for t in [
        "Q8_0", "Q8_1", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
        "Q8_K",
    ] {
        assert!(
            checked.get(t).copied().unwrap_or(0) >= 10,
            "too few ggml cases for {t}: {checked:?}"
        );
    }
}

#[test]
fn real_model_rows_cover_the_model_types() {
    let types: std::collections::BTreeSet<String> = cases()
        .iter()
        .filter(|c| c.field("kind") == "model")
        .map(|c| c.field("type").to_string())
        .collect();
    for t in ["Q4_1", "Q8_0", "Q5_0", "Q4_K", "Q6_K"] {
        assert!(types.contains(t), "no real-model rows of {t}: {types:?}");
    }
}

/// Deterministic test data (xorshift), normal-ish like real weights.
struct Rng(u64);

impl Rng {
    fn step(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn next(&mut self) -> f32 {
        (self.step() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn byte(&mut self) -> u8 {
        (self.step() >> 24) as u8
    }
    fn normal(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| ((0..4).map(|_| self.next()).sum::<f32>() - 2.0) * 1.732)
            .collect()
    }
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
}

fn rel_rmse(x: &[f32], y: &[f32]) -> f64 {
    let d: Vec<f32> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    rms(&d) / rms(x)
}

/// Round-trip error on 64 normal-ish super-blocks (16384 values), relative to the input's RMS.
#[test]
fn round_trip_error_bounds() {
    use GgmlType::*;
    // measured on this data: F16 2.06e-4, BF16 1.66e-3, Q8_0/Q8_1 5.01e-3, Q4_0 8.16e-2,
    // Q4_1 7.56e-2, Q5_0 3.99e-2, Q5_1 3.65e-2, Q2_K 0.285, Q3_K 0.145, Q4_K 6.86e-2,
    // Q5_K 3.46e-2, Q6_K 1.68e-2; each bound is ~10% above.
    let bounds = [
        (F16, 2.3e-4),
        (BF16, 1.85e-3),
        (Q8_0, 5.6e-3),
        (Q8_1, 5.6e-3),
        (Q4_0, 0.09),
        (Q4_1, 0.084),
        (Q5_0, 0.044),
        (Q5_1, 0.041),
        (Q2K, 0.315),
        (Q3K, 0.16),
        (Q4K, 0.076),
        (Q5K, 0.0385),
        (Q6K, 0.0187),
        (Q8K, 6.7e-3), // measured 6.11e-3 (one scale per 256 values)
    ];
    let x = Rng(0x1234_5678_9abc_def1).normal(64 * QK_K);
    let mut report = String::new();
    for (ty, bound) in bounds {
        let q = quantize(ty, &x).unwrap();
        assert_eq!(q.len(), ty.row_bytes(x.len()), "{}", ty.name());
        let y = dequantize(ty, &q, x.len()).unwrap();
        let e = rel_rmse(&x, &y);
        report += &format!("{} {e:.4e}; ", ty.name());
        assert!(
            e <= bound,
            "{}: relative RMSE {e:.4e} > {bound:e} ({report})",
            ty.name()
        );
    }
    println!("{report}");
}

/// Blocks whose contents vary wildly in scale: each block is still fitted on its own.
#[test]
fn round_trip_per_block_scale() {
    use GgmlType::*;
    let mut rng = Rng(77);
    let mut x = Vec::new();
    // from 1e-3 (f16 scales become subnormal below that and lose precision, as in ggml) to 1e3
    let scales = [1e-3f32, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0, 0.5];
    for scale in scales {
        x.extend(rng.normal(QK_K).iter().map(|v| v * scale));
    }
    for (ty, bound) in [
        (Q8_0, 6e-3),
        (Q4_0, 0.12),
        (Q4_1, 0.105),
        (Q5_0, 0.06),
        (Q5_1, 0.052),
        (Q2K, 0.4),
        (Q3K, 0.19),
        (Q4K, 0.085),
        (Q5K, 0.042),
        (Q6K, 0.021),
    ] {
        let y = dequantize(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
        for b in 0..8 {
            let r = b * QK_K..(b + 1) * QK_K;
            let e = rel_rmse(&x[r.clone()], &y[r]);
            assert!(
                e <= bound,
                "{} block {b} (scale {}): relative RMSE {e:.3e}",
                ty.name(),
                scales[b]
            );
        }
    }
}

/// All zeros, constants and a single outlier: exact zeros stay exactly zero, constants come back
/// within the scale's f16 precision, and the outlier itself survives.
#[test]
fn edge_inputs() {
    use GgmlType::*;
    let types = [
        F16, BF16, Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K,
    ];
    for ty in types {
        let zeros = vec![0f32; 2 * QK_K];
        let y = dequantize(ty, &quantize(ty, &zeros).unwrap(), zeros.len()).unwrap();
        assert!(y.iter().all(|&v| v == 0.0), "{}: zeros", ty.name());

        for c in [0.37f32, -2.5] {
            let x = vec![c; QK_K];
            let y = dequantize(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
            let worst = y.iter().map(|v| (v - c).abs()).fold(0f32, f32::max);
            assert!(
                worst <= 0.01 * c.abs(),
                "{}: constant {c} comes back off by {worst}",
                ty.name()
            );
        }

        let mut x: Vec<f32> = Rng(5).normal(QK_K).iter().map(|v| v * 0.01).collect();
        x[37] = 1000.0;
        let y = dequantize(ty, &quantize(ty, &x).unwrap(), x.len()).unwrap();
        assert!(
            (y[37] - 1000.0).abs() <= 10.0,
            "{}: outlier came back as {}",
            ty.name(),
            y[37]
        );
    }
}

/// NaN and infinities must not panic (the values produced are unspecified, as in ggml).
#[test]
fn non_finite_input_does_not_panic() {
    use GgmlType::*;
    let mut x = Rng(9).normal(QK_K);
    x[3] = f32::NAN;
    x[100] = f32::INFINITY;
    x[200] = f32::NEG_INFINITY;
    x[201] = f32::MAX;
    for ty in [
        F32, F16, BF16, Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K,
    ] {
        let q = quantize(ty, &x).unwrap();
        assert_eq!(dequantize(ty, &q, x.len()).unwrap().len(), x.len());
    }
    // arbitrary bytes decode without panicking too
    let bytes: Vec<u8> = (0..4 * QK_K).map(|i| (i * 37 + 11) as u8).collect();
    for ty in [
        F32, F16, BF16, Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, IQ4NL,
        IQ4XS,
    ] {
        let n = QK_K;
        let _ = dequantize(ty, &bytes[..ty.row_bytes(n)], n).unwrap();
    }
}

#[test]
fn bad_lengths_are_errors() {
    use GgmlType::*;
    for ty in [Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4K, Q5K, Q6K] {
        let bl = ty.block_len();
        assert!(quantize(ty, &vec![0.5; bl + 1]).is_err(), "{}", ty.name());
        assert!(quantize(ty, &vec![0.5; bl - 1]).is_err(), "{}", ty.name());
        assert!(quantize(ty, &[]).unwrap().is_empty());
        let ok = quantize(ty, &vec![0.5; 2 * bl]).unwrap();
        assert!(dequantize(ty, &ok, 2 * bl).is_ok());
        assert!(
            dequantize(ty, &ok[1..], 2 * bl).is_err(),
            "{}: short bytes",
            ty.name()
        );
        assert!(
            dequantize(ty, &ok, bl).is_err(),
            "{}: too many bytes",
            ty.name()
        );
        assert!(
            dequantize(ty, &ok, 2 * bl + 1).is_err(),
            "{}: n not a block multiple",
            ty.name()
        );
    }
    assert!(dequantize(F16, &[0, 0, 0], 2).is_err());
    // read-only types: no quantizer, but their lengths are checked like the others'
    for ty in [IQ4NL, IQ4XS] {
        assert!(quantize(ty, &[0.5; QK_K]).is_err(), "{}", ty.name());
        let zeros = vec![0u8; ty.row_bytes(QK_K)];
        assert_eq!(dequantize(ty, &zeros, QK_K).unwrap(), vec![0.0; QK_K]);
        assert!(dequantize(ty, &zeros[1..], QK_K).is_err(), "{}", ty.name());
    }
}

/// Q4_0 and Q5_0 blocks re-encoded as Q8_0 (to stack them with a Q8_0 tensor into one matrix)
/// dequantize to the very same f32 values: every code of every position, several scales, both
/// signs, subnormal and zero scales.
#[test]
fn widening_to_q8_0_keeps_every_value() {
    use attend::quant::widen::{common_type, to_q8_0};
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for ty in [GgmlType::Q4_0, GgmlType::Q5_0] {
        let bb = ty.block_bytes();
        let mut src = Vec::new();
        for (i, d) in [0.0f32, -0.0, 1.0, -0.37, 6.1e-5, 3.0e-7, 1234.5, -65504.0]
            .iter()
            .enumerate()
        {
            for k in 0..64 {
                let mut b: Vec<u8> = (0..bb).map(|_| rng.byte()).collect();
                b[..2].copy_from_slice(&half::f16::from_f32(*d).to_bits().to_le_bytes());
                if k == 0 {
                    // Every code at every position at least once across the blocks.
                    b[2..].fill(if i % 2 == 0 { 0 } else { 0xff });
                }
                src.extend(b);
            }
        }
        let n = src.len() / bb * 32;
        let q8 = to_q8_0(ty, &src).unwrap();
        assert_eq!(q8.len(), src.len() / bb * 34);
        let want = dequantize(ty, &src, n).unwrap();
        let got = dequantize(GgmlType::Q8_0, &q8, n).unwrap();
        assert_bits(&format!("{} widened", ty.name()), &got, &want);
        assert!(to_q8_0(ty, &src[..bb + 1]).is_err(), "a partial block");
    }
    assert!(
        to_q8_0(GgmlType::Q4_1, &[0; 20]).is_err(),
        "Q4_1 has an offset: not lossless"
    );
    use GgmlType::*;
    assert_eq!(common_type(&[Q5_0, Q5_0, Q8_0]), Some(Q8_0));
    assert_eq!(common_type(&[Q4_0, Q8_0]), Some(Q8_0));
    assert_eq!(common_type(&[Q4K, Q4K]), Some(Q4K));
    assert_eq!(common_type(&[Q4K, Q4K, Q6K]), None);
    assert_eq!(common_type(&[Q4_1, Q8_0]), None);
}
