//! The `attend` command line on the real SmolLM2 GGUF: tokenize, info, generate (text and jsonl),
//! and clear failures for bad input.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

#[path = "support/cache.rs"]
mod cache;

fn smollm2() -> PathBuf {
    cache::cached_model("SmolLM2-135M-Instruct.Q4_1.gguf")
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

fn golden() -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/smollm2-135m.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn tokenize_prints_the_reference_ids() {
    let g = golden();
    let prompt = &g["prompts"][0];
    let model = smollm2();
    let (ok, out, err) = attend(&[
        "tokenize",
        "--model",
        model.to_str().unwrap(),
        "--text",
        prompt["text"].as_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let ids: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids, prompt["ids"]);
}

#[test]
fn special_tokens_in_raw_text_are_parsed_unless_told_not_to() {
    let g = golden();
    // The chat prompt as transformers renders it (apply_chat_template(tokenize=False)).
    let prompt = g["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["chat"] == true)
        .unwrap();
    let text = prompt["text"].as_str().unwrap();
    assert!(text.starts_with("<|im_start|>"));
    let model = smollm2();
    let m = model.to_str().unwrap();
    let (ok, out, err) = attend(&["tokenize", "--model", m, "--text", text]);
    assert!(ok, "{err}");
    let ids: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids, prompt["ids"], "the ids transformers gives");
    let (ok, out, err) = attend(&[
        "tokenize",
        "--model",
        m,
        "--text",
        text,
        "--no-parse-special",
    ]);
    assert!(ok, "{err}");
    let plain: Vec<u32> = serde_json::from_str(out.trim()).unwrap();
    let im_start = prompt["ids"][0].as_u64().unwrap() as u32;
    assert!(!plain.contains(&im_start) && plain.len() > ids.as_array().unwrap().len());
}

#[test]
fn every_command_has_help() {
    for (cmd, flags) in [
        (
            "generate",
            &[
                "--top-p",
                "--prompt-ids",
                "--no-parse-special",
                "--frequency-penalty",
            ][..],
        ),
        ("chat", &["--system", "--temperature", "--max-tokens"][..]),
        (
            "bench",
            &["--repeat", "--prompt-tokens", "--profile", "--json"][..],
        ),
        ("tokenize", &["--text", "--no-parse-special"][..]),
        ("info", &["--context"][..]),
        ("split", &["--max-tensors"][..]),
        ("adapters", &[][..]),
    ] {
        let (ok, out, err) = attend(&[cmd, "--help"]);
        assert!(ok, "{cmd}: {err}");
        assert!(out.contains("Usage: attend"), "{cmd}: {out}");
        for f in flags {
            assert!(out.contains(f), "{cmd} --help lacks {f}:\n{out}");
        }
    }
    let (ok, out, _) = attend(&["--help"]);
    assert!(ok && out.contains("chat") && out.contains("bench"), "{out}");
    // --runs is an alias of --repeat: only the unknown flag is refused.
    let (ok, _, err) = attend(&["bench", "--model", "m.gguf", "--runs", "2", "--bogus"]);
    assert!(
        !ok && err.contains("--bogus") && !err.contains("--runs"),
        "{err}"
    );
}

/// Drive `attend chat` through its standard input; returns (stdout, stderr).
fn chat_session(input: &str, extra: &[&str]) -> (String, String) {
    use std::io::Write;
    let model = smollm2();
    let mut args = vec![
        "chat",
        "--model",
        model.to_str().unwrap(),
        "--temperature",
        "0",
        "--max-tokens",
        "8",
    ];
    args.extend_from_slice(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_attend"))
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run attend chat");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{e}");
    (o, e)
}

/// (prompt tokens, cached tokens) of each answer, from the stats lines on stderr.
fn turns(err: &str) -> Vec<(u32, u32)> {
    err.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('[')?;
            let (n, rest) = rest.split_once(" prompt tokens (")?;
            let (c, _) = rest.split_once(" cached)")?;
            Some((n.parse().ok()?, c.parse().ok()?))
        })
        .collect()
}

#[test]
fn chat_repl_keeps_the_conversation_and_obeys_commands() {
    let q = "What is the capital of France?";
    let input =
        format!("{q}\nAnd of Italy?\n/reset\n{q}\n/system You are a pirate.\n{q}\n/bogus\n");
    let (out, err) = chat_session(&input, &[]);
    let t = turns(&err);
    assert_eq!(t.len(), 4, "four answers:\n{err}");
    let answers: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(answers.len(), 4, "{out}");
    assert!(answers[0].contains("Paris"), "{out}");
    // Turn 2 carries turn 1 (longer prompt, most of it served from the KV cache).
    assert!(t[1].0 > t[0].0 + 5 && t[1].1 >= t[0].0, "{t:?}");
    // /reset: the same question gets the same prompt and (greedy) the same answer.
    assert_eq!(t[2].0, t[0].0, "{t:?}");
    assert_eq!(answers[2], answers[0]);
    // /system replaces the default system message: a different prompt.
    assert_ne!(t[3].0, t[0].0, "{t:?}");
    assert!(
        err.contains("[conversation reset]") && err.contains("system message set"),
        "{err}"
    );
    assert!(err.contains("unknown command /bogus"), "{err}");
    // --system from the command line is the same as /system.
    let (out2, err2) = chat_session(&format!("{q}\n"), &["--system", "You are a pirate."]);
    assert_eq!(turns(&err2)[0].0, t[3].0);
    assert_eq!(out2.lines().find(|l| !l.is_empty()).unwrap(), answers[3]);
}

#[test]
fn generate_jsonl_streams_tokens_then_a_summary() {
    let g = golden();
    let prompt = &g["prompts"][0];
    let ids: Vec<String> = prompt["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let model = smollm2();
    let (ok, out, err) = attend(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt-ids",
        &ids.join(","),
        "--max-tokens",
        "4",
        "--temperature",
        "0",
        "--top-logprobs",
        "3",
        "--output",
        "jsonl",
        "--ignore-eos",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{out}");
    for (i, l) in lines[..4].iter().enumerate() {
        assert_eq!(l["id"], prompt["hf_greedy"][i], "token {i}");
        assert!(l["text"].is_string());
        let top = l["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0][0], l["id"], "greedy picks the most likely token");
        assert!(top[0][1].as_f64().unwrap() <= 0.0);
    }
    let done = &lines[4];
    assert_eq!(done["done"], true);
    assert_eq!(done["prompt_tokens"], ids.len());
    assert_eq!(done["generated_tokens"], 4);
    assert_eq!(done["finish_reason"], "length");
    assert!(
        done["prefill_tok_s"].as_f64().unwrap() > 0.0
            && done["decode_tok_s"].as_f64().unwrap() > 0.0
    );
}

#[test]
fn chat_generate_answers_in_text() {
    let model = smollm2();
    let (ok, out, err) = attend(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--chat",
        "--prompt",
        "What is the capital of France?",
        "--temperature",
        "0",
        "--max-tokens",
        "12",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("Paris"), "{out}");
    assert!(err.contains("tok/s"), "{err}");
}

#[test]
fn info_reports_memory_within_bounds() {
    let model = smollm2();
    let (ok, out, err) = attend(&["info", "--model", model.to_str().unwrap()]);
    assert!(ok, "{err}");
    for want in [
        "architecture: llama",
        "weight bytes:",
        "kv-cache bytes:",
        "gpu bytes in use:",
        "adapter:",
        "Q4_1",
    ] {
        assert!(out.contains(want), "missing '{want}' in\n{out}");
    }
    let ratio: f64 = out
        .split("; ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no ratio in\n{out}"));
    assert!(ratio <= 1.1, "GPU bytes are {ratio} × (weights + KV)");

    // --json: the same facts as one object (Engine::info(), as the browser's engine.info()).
    let (ok, out, err) = attend(&["info", "--model", model.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("info --json prints one JSON object");
    assert_eq!(v["architecture"], "llama", "{v}");
    assert_eq!(v["parameters"]["layers"], 30, "{v}");
    let (w, kv, gpu) = (
        v["weight_bytes"].as_f64().unwrap(),
        v["kv_cache_bytes"].as_f64().unwrap(),
        v["gpu_bytes"].as_f64().unwrap(),
    );
    assert!(gpu >= w + kv && gpu <= 1.1 * (w + kv), "{v}");
    assert!(v["tensor_types"].to_string().contains("Q4_1"), "{v}");
}

#[test]
fn bad_input_fails_cleanly() {
    let (ok, _, err) = attend(&["generate", "--model", "/nonexistent.gguf", "--prompt", "hi"]);
    assert!(!ok && err.contains("/nonexistent.gguf"), "{err}");
    let (ok, _, err) = attend(&["frobnicate"]);
    assert!(
        !ok && err.contains("unrecognized subcommand 'frobnicate'"),
        "{err}"
    );
    let (ok, _, err) = attend(&["generate", "--model", "m.gguf"]);
    assert!(
        !ok && err.contains("--prompt"),
        "a prompt is required: {err}"
    );
    // Sampling values are checked like an OpenAI request's, before the model loads.
    for (flag, value, field) in [
        ("--temperature", "-1", "temperature"),
        ("--top-p", "0", "top_p"),
        ("--frequency-penalty", "3", "frequency_penalty"),
    ] {
        let (ok, _, err) = attend(&[
            "generate",
            "--model",
            "/nonexistent.gguf",
            "--prompt",
            "x",
            flag,
            value,
        ]);
        assert!(
            !ok && err.contains(field) && !err.contains("nonexistent"),
            "{flag}: {err}"
        );
    }
    let model = smollm2();
    let (ok, _, err) = attend(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt-ids",
        "1,x",
    ]);
    assert!(!ok && err.contains("'x'"), "{err}");
    // A prompt past the context fails with the reason (before the warmup).
    let ids = ["100"; 20].join(",");
    let (ok, _, err) = attend(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--context",
        "16",
        "--prompt-ids",
        &ids,
    ]);
    assert!(
        !ok && err.contains("20 tokens") && err.contains("16"),
        "{err}"
    );
}

#[test]
fn split_model_generates_like_the_single_file() {
    let dir = std::env::temp_dir().join(format!("attend-cli-split-{}", std::process::id()));
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-qwen2.gguf");
    let (ok, out, err) = attend(&[
        "split",
        "--model",
        tiny.to_str().unwrap(),
        "--max-tensors",
        "7",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let shards: Vec<&str> = out.lines().collect();
    assert!(
        shards.len() >= 3 && shards[0].contains("-00001-of-"),
        "{out}"
    );
    let run = |model: &str| {
        let (ok, out, err) = attend(&[
            "generate",
            "--model",
            model,
            "--prompt-ids",
            "5,6,7,8",
            "--max-tokens",
            "6",
            "--temperature",
            "0",
            "--output",
            "jsonl",
            "--ignore-eos",
        ]);
        assert!(ok, "{err}");
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone())
            .collect::<Vec<_>>()
    };
    // Opening any shard finds the others.
    assert_eq!(run(shards[1]), run(tiny.to_str().unwrap()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn max_gpu_bytes_refuses_a_model_over_the_budget() {
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-qwen2.gguf");
    let tiny = tiny.to_str().unwrap();
    // Under the budget: loads and reports its memory.
    let (ok, out, err) = attend(&["info", "--model", tiny, "--max-gpu-bytes", "1G"]);
    assert!(ok, "{err}");
    let total: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("gpu bytes in use: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no GPU bytes in\n{out}"));
    // Over it (1 KiB, then one byte under the estimate's order of magnitude): refused with the
    // need, the limit and what to do, for every command that loads a model.
    for args in [
        vec!["info", "--model", tiny, "--max-gpu-bytes", "1K"],
        vec![
            "generate",
            "--model",
            tiny,
            "--prompt-ids",
            "5,6",
            "--max-gpu-bytes",
            "1024",
        ],
        vec![
            "bench",
            "--model",
            tiny,
            "--max-gpu-bytes",
            "1k",
            "--repeat",
            "1",
        ],
    ] {
        let (ok, out, err) = attend(&args);
        assert!(!ok, "{args:?} should fail: {out}");
        assert!(
            err.contains("over the limit of 1024") && err.contains("smaller context"),
            "{args:?}: {err}"
        );
    }
    let under = (total / 100).to_string();
    let (ok, _, err) = attend(&["info", "--model", tiny, "--max-gpu-bytes", &under]);
    assert!(
        !ok && err.contains(&format!("over the limit of {under}")),
        "{err}"
    );
    for bad in ["lots", "1T", "-5", "99999999999G"] {
        let (ok, _, err) = attend(&["info", "--model", tiny, "--max-gpu-bytes", bad]);
        assert!(!ok && err.contains("is not a byte count"), "{bad}: {err}");
    }
}

/// `attend bench --json` on the tiny Qwen2 fixture with its own `ATTEND_CACHE`.
fn bench_tiny(cache: &std::path::Path, extra: &[&str]) -> Value {
    let out = run_bench_tiny(cache, extra);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    serde_json::from_slice(&out.stdout).expect("bench prints one JSON object")
}

/// [`bench_tiny`]'s run, whatever its outcome.
fn run_bench_tiny(cache: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-qwen2.gguf");
    Command::new(env!("CARGO_BIN_EXE_attend"))
        .env("ATTEND_CACHE", cache)
        .args([
            "bench",
            "--model",
            model.to_str().unwrap(),
            "--context",
            "64",
        ])
        .args([
            "--prompt-tokens",
            "4",
            "--gen-tokens",
            "2",
            "--repeat",
            "1",
            "--json",
        ])
        .args(extra)
        .output()
        .expect("run attend")
}

#[test]
fn tuned_shapes_are_remembered_between_runs() {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tuned-shapes");
    let _ = std::fs::remove_dir_all(&cache);
    let file = cache.join("tuned.json");
    let pipelines = |v: &Value| v["pipelines"].as_u64().expect("pipelines");
    let shapes = || -> Value {
        serde_json::from_str(&std::fs::read_to_string(&file).expect("tuned.json written"))
            .expect("tuned.json is JSON")
    };

    // The first run measures every candidate shape and keeps the winners.
    let first = bench_tiny(&cache, &[]);
    let kept = shapes();
    let keys: Vec<&String> = kept.as_object().expect("an object").keys().collect();
    assert!(
        keys.iter().any(|k| k.contains("| matvec "))
            && keys.iter().any(|k| k.contains("| matmul ")),
        "{keys:?}"
    );
    // The next compiles only the winners.
    let second = bench_tiny(&cache, &[]);
    assert!(
        pipelines(&second) < pipelines(&first),
        "pipelines: {} with remembered shapes, {} measuring",
        pipelines(&second),
        pipelines(&first)
    );
    assert_eq!(shapes(), kept);
    // A damaged file costs a full tune, never a failure, and is written again.
    std::fs::write(&file, "{\"not\": json").unwrap();
    // (Which pipelines the warm-up passes add depends on which shapes won, so counts of two
    // measuring runs may differ by one or two.)
    let third = bench_tiny(&cache, &[]);
    assert!(pipelines(&third) > pipelines(&second));
    assert_eq!(shapes().as_object().unwrap().len(), keys.len());
    // --retune measures again although the file is there.
    let fourth = bench_tiny(&cache, &["--retune"]);
    assert!(pipelines(&fourth) > pipelines(&second));
}

#[test]
fn tune_modes_measure_or_take_remembered_or_built_in_shapes() {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tune-modes");
    let _ = std::fs::remove_dir_all(&cache);
    let file = cache.join("tuned.json");
    let pipelines = |v: &Value| v["pipelines"].as_u64().expect("pipelines");
    let kept = || -> usize {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("tuned.json written"))
                .expect("tuned.json is JSON");
        v.as_object().expect("an object").len()
    };

    // Built-in shapes: nothing is measured, so nothing is remembered.
    let defaults = bench_tiny(&cache, &["--tune", "defaults"]);
    assert_eq!(kept(), 0);
    // Nothing remembered yet: "remembered" takes the built-in shapes too.
    let remembered = bench_tiny(&cache, &["--tune", "remembered"]);
    assert_eq!(kept(), 0);
    assert_eq!(pipelines(&remembered), pipelines(&defaults));
    // Measuring compiles every candidate and keeps the winners...
    let measured = bench_tiny(&cache, &["--tune", "measure"]);
    let n = kept();
    assert!(n > 0);
    assert!(pipelines(&measured) > pipelines(&defaults));
    // ...which "remembered" then takes without measuring again...
    let remembered = bench_tiny(&cache, &["--tune", "remembered"]);
    assert!(pipelines(&remembered) < pipelines(&measured));
    assert_eq!(kept(), n);
    // ...while "defaults" ignores them (and forgets nothing).
    let defaults_again = bench_tiny(&cache, &["--tune", "defaults"]);
    assert_eq!(pipelines(&defaults_again), pipelines(&defaults));
    assert_eq!(kept(), n);

    let out = run_bench_tiny(&cache, &["--tune", "fast"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("tune must be") && err.contains("\"fast\""),
        "{err}"
    );
}
