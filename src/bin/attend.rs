//! `attend`: the native command line — list adapters, inspect, tokenize, run and benchmark GGUF
//! models on the GPU.

#[cfg(target_arch = "wasm32")]
fn main() {} // the CLI is native only; the browser uses the wasm-bindgen API

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use attend::chat::Message;
    use attend::engine::{Engine, GenParams, LoadOptions};
    use attend::{Error, Result};
    use serde_json::json;
    use std::collections::HashMap;
    use std::io::Write;
    use std::path::PathBuf;
    use std::process::ExitCode;

    const USAGE: &str = "usage: attend <command> [options]

commands:
  adapters                               list GPU adapters with features and limits
  info     --model PATH [--context N] [--max-gpu-bytes B]
                                         architecture, hyperparameters, tensor types, memory
                                         (--context caps the KV cache; default: the model's)
  tokenize --model PATH --text TEXT      token ids as a JSON array (BOS as the model says)
  generate --model PATH (--prompt TEXT | --prompt-ids 1,2,3) [--max-tokens N]
           [--temperature T] [--top-p P] [--top-k K] [--seed S] [--chat] [--system TEXT]
           [--top-logprobs K] [--stop TEXT] [--ignore-eos] [--output text|jsonl] [--context N]
           [--max-gpu-bytes B]
  attention --model PATH (--prompt TEXT | --prompt-ids 1,2,3) --token I [--layer L] [--head H]
           [--chat] [--system TEXT] [--json] [--context N]
                                         attention weights of token I over tokens 0..=I, per
                                         layer and head (--json: {tokens, query, weights
                                         [layer][head][key]}; text: the top keys per head)
  bench    --model PATH [--prompt-tokens 128] [--gen-tokens 64] [--repeat 3] [--context N] [--json] [--profile]
                                         speed, bytes per token, fraction of the adapter's read
                                         bandwidth, dispatches and CPU time per token (--runs is
                                         an alias of --repeat)
           (info, generate, bench: --max-gpu-bytes B refuses, before reading any weight, a model
            whose weights + KV cache + activations would need more GPU memory than B bytes;
            B may end in K, M or G)
  split    --model PATH --max-tensors N --out DIR
                                         write a split GGUF (name-0000i-of-0000N.gguf) like gguf-split
";

    /// `--key value` pairs and `--flag`s after the command.
    struct Args {
        values: HashMap<String, Vec<String>>,
    }

    impl Args {
        fn parse(args: &[String], flags: &[&str]) -> Result<Args> {
            let mut values: HashMap<String, Vec<String>> = HashMap::new();
            let mut it = args.iter();
            while let Some(a) = it.next() {
                let Some(key) = a.strip_prefix("--") else {
                    return Err(Error::Invalid(format!(
                        "unexpected argument '{a}'\n\n{USAGE}"
                    )));
                };
                let v = if flags.contains(&key) {
                    "true".to_string()
                } else {
                    it.next()
                        .cloned()
                        .ok_or_else(|| Error::Invalid(format!("--{key} needs a value")))?
                };
                values.entry(key.to_string()).or_default().push(v);
            }
            Ok(Args { values })
        }
        fn get(&self, k: &str) -> Option<&str> {
            self.values
                .get(k)
                .and_then(|v| v.last())
                .map(String::as_str)
        }
        fn all(&self, k: &str) -> Vec<String> {
            self.values.get(k).cloned().unwrap_or_default()
        }
        fn flag(&self, k: &str) -> bool {
            self.values.contains_key(k)
        }
        fn need(&self, k: &str) -> Result<&str> {
            self.get(k)
                .ok_or_else(|| Error::Invalid(format!("--{k} is required\n\n{USAGE}")))
        }
        fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T> {
            match self.get(k) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| Error::Invalid(format!("--{k}: '{v}' is not a valid number"))),
            }
        }
        fn model(&self) -> Result<PathBuf> {
            Ok(PathBuf::from(self.need("model")?))
        }
        fn load_options(&self) -> Result<LoadOptions> {
            let mut o = LoadOptions::default();
            if let Some(c) = self.get("context") {
                o.context =
                    Some(c.parse().map_err(|_| {
                        Error::Invalid(format!("--context: '{c}' is not a number"))
                    })?);
            }
            if let Some(b) = self.get("max-gpu-bytes") {
                o.max_gpu_bytes = Some(parse_bytes(b).ok_or_else(|| {
                    Error::Invalid(format!(
                        "--max-gpu-bytes: '{b}' is not a byte count (e.g. 1500000000, 512M, 2G)"
                    ))
                })?);
            }
            Ok(o)
        }
    }

    /// A byte count: digits with an optional binary suffix `K`, `M` or `G` (`512M` = 512 MiB).
    fn parse_bytes(s: &str) -> Option<u64> {
        let (digits, unit) = match s.strip_suffix(['K', 'k', 'M', 'm', 'G', 'g']) {
            Some(d) => (d, &s[d.len()..]),
            None => (s, ""),
        };
        let shift = match unit {
            "" => 0,
            "K" | "k" => 10,
            "M" | "m" => 20,
            _ => 30,
        };
        let n: u64 = digits.parse().ok()?;
        n.checked_mul(1 << shift)
    }

    pub fn main() -> ExitCode {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
        let args: Vec<String> = std::env::args().skip(1).collect();
        let rest = args.get(1..).unwrap_or(&[]);
        let result = match args.first().map(String::as_str) {
            Some("adapters") => adapters(),
            Some("info") => Args::parse(rest, &[]).and_then(|a| info(&a)),
            Some("tokenize") => Args::parse(rest, &[]).and_then(|a| tokenize(&a)),
            Some("generate") => {
                Args::parse(rest, &["chat", "ignore-eos"]).and_then(|a| generate(&a))
            }
            Some("attention") => Args::parse(rest, &["chat", "json"]).and_then(|a| attention(&a)),
            Some("bench") => Args::parse(rest, &["json", "profile"]).and_then(|a| bench(&a)),
            Some("split") => Args::parse(rest, &[]).and_then(|a| split(&a)),
            Some("-h" | "--help" | "help") => {
                print!("{USAGE}");
                Ok(())
            }
            Some(other) => Err(Error::Invalid(format!(
                "unknown command '{other}'\n\n{USAGE}"
            ))),
            None => Err(Error::Invalid(USAGE.to_string())),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("attend: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn adapters() -> Result<()> {
        let list = pollster::block_on(attend::gpu::list_adapters());
        if list.is_empty() {
            return Err(Error::NoAdapter(
                "no Vulkan/Metal/DX12 adapter (on Linux without a GPU: apt-get install mesa-vulkan-drivers)".into(),
            ));
        }
        for (i, a) in list.iter().enumerate() {
            println!("[{i}] {a}");
        }
        Ok(())
    }

    fn load(a: &Args) -> Result<Engine> {
        pollster::block_on(Engine::load_file(&a.model()?, &a.load_options()?))
    }

    fn mib(b: u64) -> String {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    }

    fn info(a: &Args) -> Result<()> {
        let e = load(a)?;
        let c = &e.model.cfg;
        println!("model: {}", a.model()?.display());
        println!("architecture: {}", c.arch.name());
        println!(
            "layers {} · d_model {} · heads {} (kv {}) · head_dim {} · ffn {} · vocab {} · trained context {}",
            c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.vocab, c.train_ctx
        );
        println!(
            "rope: base {} (local {}) · scale {} · {} · dims {} · norm eps {} · sliding window {}",
            c.rope_base,
            c.rope_base_local,
            c.rope_scale,
            if c.rope_neox { "neox" } else { "normal" },
            c.rope_dims,
            c.norm_eps,
            c.window
        );
        let mut types: Vec<(String, usize, u64)> = Vec::new();
        for t in &e.header.tensors {
            match types.iter_mut().find(|x| x.0 == t.ty.name()) {
                Some(x) => {
                    x.1 += 1;
                    x.2 += t.byte_size()
                }
                None => types.push((t.ty.name().to_string(), 1, t.byte_size())),
            }
        }
        let types: Vec<String> = types
            .iter()
            .map(|(n, c, b)| format!("{n}×{c} ({})", mib(*b)))
            .collect();
        println!("tensor types: {}", types.join(", "));
        let m = e.memory();
        println!("context: {} tokens", e.model.context);
        println!("weight bytes: {} ({})", m.weights, mib(m.weights));
        println!("kv-cache bytes: {} ({}, f16)", m.kv_cache, mib(m.kv_cache));
        println!("activation bytes: {} ({})", m.scratch, mib(m.scratch));
        println!(
            "gpu bytes in use: {} ({}; {:.3} × weights+kv)",
            m.gpu_total,
            mib(m.gpu_total),
            m.gpu_total as f64 / (m.weights + m.kv_cache) as f64
        );
        print!("adapter: {}", e.gpu.adapter);
        println!();
        Ok(())
    }

    fn tokenize(a: &Args) -> Result<()> {
        let file = attend::gguf::GgufFile::open(&a.model()?)?;
        let tok = attend::tokenizer::Tokenizer::from_gguf(file.header())?;
        let text = a.need("text")?;
        attend::engine::check_prompt_bytes(text)?;
        let ids = tok.encode(text, true, false);
        println!("{}", serde_json::to_string(&ids).expect("ids serialize"));
        Ok(())
    }

    fn prompt_ids(e: &Engine, a: &Args) -> Result<Vec<u32>> {
        if let Some(ids) = a.get("prompt-ids") {
            return ids
                .split(',')
                .map(|s| {
                    s.trim().parse::<u32>().map_err(|_| {
                        Error::Invalid(format!("--prompt-ids: '{s}' is not a token id"))
                    })
                })
                .collect();
        }
        let text = a.need("prompt")?;
        if a.flag("chat") {
            let mut messages = Vec::new();
            if let Some(sys) = a.get("system") {
                messages.push(Message {
                    role: "system".into(),
                    content: sys.into(),
                });
            }
            messages.push(Message {
                role: "user".into(),
                content: text.into(),
            });
            e.chat_prompt(&messages)
        } else {
            e.encode(text)
        }
    }

    /// `attend attention`: the attention lens of one token (see `attend::engine::Attention`).
    fn attention(a: &Args) -> Result<()> {
        let opt = |k: &str| -> Result<Option<u32>> {
            a.get(k)
                .map(|v| {
                    v.parse().map_err(|_| {
                        Error::Invalid(format!("--{k}: '{v}' is not a non-negative integer"))
                    })
                })
                .transpose()
        };
        let query = attend::engine::AttentionQuery {
            token: opt("token")?
                .ok_or_else(|| Error::Invalid(format!("--token is required\n\n{USAGE}")))?,
            layer: opt("layer")?,
            head: opt("head")?,
        };
        if a.get("prompt").is_none() && a.get("prompt-ids").is_none() {
            return Err(Error::Invalid(format!(
                "--prompt or --prompt-ids is required\n\n{USAGE}"
            )));
        }
        let mut e = load(a)?;
        let ids = prompt_ids(&e, a)?;
        let att = pollster::block_on(e.attention(&ids, &query))?;
        if a.flag("json") {
            println!(
                "{}",
                serde_json::to_string(&att).expect("attention serializes")
            );
        } else {
            print!("{}", att.table(5));
        }
        Ok(())
    }

    fn generate(a: &Args) -> Result<()> {
        let mut e = load(a)?;
        // A prompt that cannot run fails before the slow warmup.
        let prompt = prompt_ids(&e, a)?;
        e.check_prompt(&prompt)?;
        pollster::block_on(e.warmup())?; // tunes the matvecs and compiles the pipelines
        let mut p = GenParams {
            max_tokens: a.num("max-tokens", 256)?,
            stop: a.all("stop"),
            ..Default::default()
        };
        p.sampler.temperature = a.num("temperature", 0.7)?;
        p.sampler.top_p = a.num("top-p", p.sampler.top_p)?;
        p.sampler.top_k = a.num("top-k", p.sampler.top_k)?;
        if a.get("seed").is_some() {
            p.sampler.seed = Some(a.num("seed", 0u64)?);
        }
        p.top_logprobs = a.num("top-logprobs", 0)?;
        p.ignore_eog = a.flag("ignore-eos");
        let jsonl = match a.get("output").unwrap_or("text") {
            "jsonl" => true,
            "text" => false,
            o => {
                return Err(Error::Invalid(format!(
                    "--output must be text or jsonl, not '{o}'"
                )))
            }
        };
        let stdout = std::io::stdout();
        let stats = pollster::block_on(e.generate(&prompt, &p, |t| {
            let mut out = stdout.lock();
            if jsonl {
                let mut line = json!({ "id": t.id, "text": t.text });
                if p.top_logprobs > 0 {
                    line["top_logprobs"] = json!(t
                        .top_logprobs
                        .iter()
                        .map(|&(i, l)| json!([i, l]))
                        .collect::<Vec<_>>());
                }
                let _ = writeln!(out, "{line}");
            } else {
                let _ = write!(out, "{}", t.text);
            }
            let _ = out.flush();
            true
        }))?;
        if jsonl {
            println!(
                "{}",
                json!({
                    "done": true,
                    "prompt_tokens": stats.prompt_tokens,
                    "generated_tokens": stats.generated_tokens,
                    "prefill_tok_s": stats.prefill_tok_s(),
                    "decode_tok_s": stats.decode_tok_s(),
                    "finish_reason": stats.finish_reason.as_str(),
                })
            );
        } else {
            println!();
            eprintln!(
                "[{} prompt tokens, {:.1} tok/s prefill · {} generated, {:.1} tok/s decode · {}]",
                stats.prompt_tokens,
                stats.prefill_tok_s(),
                stats.generated_tokens,
                stats.decode_tok_s(),
                stats.finish_reason.as_str()
            );
        }
        Ok(())
    }

    /// Prefill N prompt tokens, then decode M greedy tokens; median of several runs.
    fn bench(a: &Args) -> Result<()> {
        let t0 = std::time::Instant::now();
        let mut e = load(a)?;
        let load_s = t0.elapsed().as_secs_f64();
        let t1 = std::time::Instant::now();
        pollster::block_on(e.warmup())?;
        let compile_s = t1.elapsed().as_secs_f64();
        let d = attend::bench::BenchOptions::default();
        let o = attend::bench::BenchOptions {
            prompt_tokens: a.num("prompt-tokens", d.prompt_tokens)?,
            gen_tokens: a.num("gen-tokens", d.gen_tokens)?,
            repeat: a.num("repeat", a.num("runs", d.repeat)?)?,
            profile: a.flag("profile"),
            ..d
        };
        let mut r = pollster::block_on(attend::bench::run(&mut e, &o))?;
        r.load_s = load_s;
        r.compile_s = compile_s;
        let mut v = serde_json::to_value(&r).map_err(|e| Error::Invalid(e.to_string()))?;
        v["model"] = json!(a.model()?.display().to_string());
        if a.flag("json") {
            println!("{v}");
            return Ok(());
        }
        println!("model    {}", a.model()?.display());
        println!("adapter  {}", r.adapter);
        println!(
            "prefill  {:>8.1} tok/s  ({} tokens, ttft {:.3} s)",
            r.prefill_tok_s, r.prompt_tokens, r.ttft_s
        );
        println!(
            "decode   {:>8.1} tok/s  ({} tokens, {:.1} MB/token, {:.2} GB/s)",
            r.decode_tok_s,
            r.gen_tokens,
            r.bytes_per_token as f64 / 1e6,
            r.decode_gb_s
        );
        println!(
            "roofline {:>8.2}       (shader read {:.2} GB/s [{}], buffer copy {:.2} GB/s)",
            r.roofline_fraction, r.copy_gb_s, r.copy_kernel, r.buffer_copy_gb_s
        );
        println!(
            "dispatch {:>8}       per token ({:.1} per layer), CPU {:.3} ms/token",
            r.dispatches_per_token, r.dispatches_per_layer, r.cpu_ms_per_token
        );
        println!(
            "memory   {} on the GPU ({} weights, {} KV cache); load {:.2} s, compile {:.2} s",
            mib(r.gpu_bytes),
            mib(r.weight_bytes),
            mib(r.kv_bytes),
            r.load_s,
            r.compile_s
        );
        for pass in ["prefill", "decode"] {
            let rows: Vec<_> = r.profile.iter().filter(|k| k.pass == pass).collect();
            let total: f64 = rows.iter().map(|k| k.ms).sum();
            if rows.is_empty() {
                continue;
            }
            let per = if pass == "decode" {
                "per token"
            } else {
                "whole prompt"
            };
            println!("\nGPU time, {pass} ({per}): {total:.2} ms");
            for k in rows {
                println!(
                    "  {:<28} {:>5} calls {:>9.3} ms {:>5.1}%",
                    k.kernel,
                    k.calls,
                    k.ms,
                    100.0 * k.ms / total.max(1e-12)
                );
            }
        }
        Ok(())
    }

    /// Re-write a model as shards of at most N tensors (small models; it holds the tensors in memory).
    fn split(a: &Args) -> Result<()> {
        use attend::gguf::{GgufFile, GgufWriter};
        let path = a.model()?;
        let file = GgufFile::open(&path)?;
        let g = file.header();
        let mut w = GgufWriter::new();
        w.set_alignment(g.alignment as u32)?;
        for (k, v) in &g.metadata {
            if !k.starts_with("split.") && k != "general.alignment" {
                w.add_metadata(k, v.clone());
            }
        }
        for t in &g.tensors {
            w.add_tensor(&t.name, &t.dims, t.ty, file.read_tensor(t)?)?;
        }
        let out = PathBuf::from(a.need("out")?);
        std::fs::create_dir_all(&out)?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        for p in w.write_split(&out, stem, a.num("max-tensors", 0usize)?.max(1))? {
            println!("{}", p.display());
        }
        Ok(())
    }
}
