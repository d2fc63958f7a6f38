//! `attend attention` on the real SmolLM2 GGUF: `--prompt` tokenized like `attend tokenize`, the
//! JSON shape of the issue, weights equal to HF transformers' (the golden file of
//! tests/attention.rs, 1e-3), `--layer`/`--head` narrowing, the text table, and clear failures.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

#[path = "support/cache.rs"]
mod cache;

fn smollm2() -> String {
    let p = cache::cached_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    p.to_str().unwrap().to_string()
}

fn attend(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_attend"))
        .args(args)
        .output()
        .expect("run attend");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn golden_prompt() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference/attention-smollm2-135m.json");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    g["prompts"][0].clone()
}

#[test]
fn attention_json_matches_transformers_and_narrows() {
    let p = golden_prompt();
    let model = smollm2();
    let text = p["text"].as_str().unwrap();
    let row = &p["queries"][2];
    let qi = row["query"].as_u64().unwrap();
    let token = qi.to_string();
    let (ok, out, err) = attend(&[
        "attention",
        "--model",
        &model,
        "--prompt",
        text,
        "--token",
        &token,
        "--json",
        "--kv",
        "f32",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["query"].as_u64(), Some(qi));
    assert_eq!(
        v["tokens"].as_array().unwrap().len(),
        p["ids"].as_array().unwrap().len()
    );
    let want = row["weights_e5"].as_array().unwrap();
    let got = v["weights"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "layers");
    let mut worst = 0f64;
    for (gl, wl) in got.iter().zip(want) {
        let (gl, wl) = (gl.as_array().unwrap(), wl.as_array().unwrap());
        assert_eq!(gl.len(), wl.len(), "heads");
        for (gh, wh) in gl.iter().zip(wl) {
            let (gh, wh) = (gh.as_array().unwrap(), wh.as_array().unwrap());
            assert_eq!(gh.len() as u64, qi + 1, "keys 0..=query");
            for (a, b) in gh.iter().zip(wh) {
                let d = (a.as_f64().unwrap() - b.as_i64().unwrap() as f64 * 1e-5).abs();
                worst = worst.max(d);
            }
        }
    }
    // With an f32 KV cache, within 1e-3 of plain fp32 transformers (~1e-5 measured).
    assert!(worst <= 1e-3, "max |attend - HF fp32| = {worst}");

    // --prompt-ids with --layer/--head: one layer, one head, the same numbers.
    let ids: Vec<String> = p["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.to_string())
        .collect();
    let (ok, out, err) = attend(&[
        "attention",
        "--model",
        &model,
        "--prompt-ids",
        &ids.join(","),
        "--token",
        &token,
        "--layer",
        "3",
        "--head",
        "2",
        "--json",
        "--kv",
        "f32",
    ]);
    assert!(ok, "{err}");
    let one: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(one["layers"], serde_json::json!([3]));
    assert_eq!(one["heads"], serde_json::json!([2]));
    let a = one["weights"][0][0].as_array().unwrap();
    let b = v["weights"][3][2].as_array().unwrap();
    for (x, y) in a.iter().zip(b) {
        assert!((x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-6);
    }

    // The text table: one line per head of the layer, naming the query.
    let (ok, out, err) = attend(&[
        "attention",
        "--model",
        &model,
        "--prompt",
        text,
        "--token",
        &token,
        "--layer",
        "3",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("query token {qi} ")), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("layer  3 head"))
            .count(),
        9,
        "{out}"
    );
}

#[test]
fn attention_rejects_bad_input_without_panicking() {
    let model = smollm2();
    let cases: [(&[&str], &str); 7] = [
        (
            &["--prompt", "Hello there", "--token", "99"],
            "does not exist",
        ),
        (&["--prompt", "Hello there", "--token", "x"], "--token"),
        (&["--prompt", "Hello there"], "--token <I>"),
        (&["--token", "0"], "--prompt"),
        (
            &["--prompt", "Hello there", "--token", "1", "--layer", "30"],
            "layer 30",
        ),
        (
            &["--prompt-ids", "1,99999999", "--token", "1"],
            "vocabulary",
        ),
        (
            &["--prompt", "Hello there", "--token", "1", "--kv", "f8"],
            "KV-cache precision",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["attention", "--model", &model];
        all.extend_from_slice(args);
        let (ok, _, err) = attend(&all);
        assert!(!ok, "{args:?} succeeded");
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
