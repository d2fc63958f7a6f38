//! `attend`: the native command line — list adapters, inspect, tokenize, run, chat with and
//! benchmark GGUF models on the GPU. `attend <command> --help` describes each command.

#[cfg(target_arch = "wasm32")]
fn main() {} // the CLI is native only; the browser uses the wasm-bindgen API

// mimalloc for Rust and (feature `override`) for the driver's C allocations: per decoded token
// wgpu and lavapipe make and free thousands of small objects, and glibc's malloc/free were half
// of the recording thread's time (README, design notes).
#[cfg(not(target_arch = "wasm32"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
#[path = "attend/attention.rs"]
mod attention;
#[cfg(not(target_arch = "wasm32"))]
#[path = "attend/bench.rs"]
mod bench;
#[cfg(not(target_arch = "wasm32"))]
#[path = "attend/generate.rs"]
mod generate;

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use attend::engine::{Engine, KvPrecision, LoadOptions, Tune};
    use attend::{Error, Result};
    use clap::{Args, Parser, Subcommand};
    use std::path::PathBuf;
    use std::process::ExitCode;

    /// Run GGUF language models on the GPU (WebGPU through wgpu: Vulkan, Metal, DX12).
    #[derive(Parser, Debug)]
    #[command(name = "attend", version, arg_required_else_help = true)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand, Debug)]
    enum Command {
        /// List GPU adapters with their features (shader-f16, subgroups, timestamps) and limits.
        Adapters,
        /// Architecture, hyperparameters, tensor types and GPU memory of a model.
        Info(InfoArgs),
        /// Print the token ids of a text as a JSON array (BOS exactly when the metadata says so).
        Tokenize(TokenizeArgs),
        /// Generate text from a prompt (raw text, token ids, or one chat turn with --chat).
        Generate(crate::generate::GenerateArgs),
        /// Attention weights of one token (--token I) over the tokens up to it, per layer and
        /// head: a table of the top keys per head, or with --json every weight.
        Attention(crate::attention::AttentionArgs),
        /// Chat interactively: streamed answers, multi-turn, /reset, /system TEXT, Ctrl-C stops
        /// an answer (Ctrl-C at the prompt or Ctrl-D quits).
        Chat(crate::generate::ChatArgs),
        /// Measure prefill and decode speed, bytes per token, the fraction of the adapter's read
        /// bandwidth, dispatches and CPU time per token (medians over --repeat runs).
        Bench(crate::bench::BenchArgs),
        /// Write a split GGUF (name-0000i-of-0000N.gguf) like gguf-split.
        Split(SplitArgs),
    }

    /// The model and how much KV cache to give it.
    #[derive(Args, Debug, Clone)]
    pub struct ModelArgs {
        /// GGUF file (the first shard of a split model finds the others).
        #[arg(long, value_name = "PATH")]
        pub model: PathBuf,
        /// KV-cache positions (default: the model's trained context).
        #[arg(long, value_name = "N")]
        pub context: Option<u32>,
        /// Refuse, before reading any weight, a model whose weights + KV cache + activations
        /// would need more GPU memory than B bytes (B may end in K, M or G).
        #[arg(long, value_name = "B", value_parser = parse_bytes, allow_hyphen_values = true)]
        pub max_gpu_bytes: Option<u64>,
        /// Measure the kernel shapes again instead of reusing the ones remembered for this
        /// adapter in $ATTEND_CACHE/tuned.json (default ~/.cache/attend).
        #[arg(long)]
        pub retune: bool,
        /// How kernel shapes are chosen: auto (measure, except on a CPU adapter in a browser),
        /// measure, remembered (measured earlier, else built-in) or defaults (built-in only).
        #[arg(long, value_name = "MODE", default_value = "auto", value_parser = parse_tune)]
        pub tune: Tune,
        /// KV-cache precision: f16 (half the memory) or f32 (attention weights, e.g. of `attend
        /// attention`, then match fp32 transformers within 1e-3).
        #[arg(long, value_name = "f16|f32", default_value = "f16", value_parser = parse_kv)]
        pub kv: KvPrecision,
    }

    fn parse_tune(s: &str) -> std::result::Result<Tune, String> {
        Tune::from_name(s).map_err(|e| e.to_string())
    }

    fn parse_kv(s: &str) -> std::result::Result<KvPrecision, String> {
        KvPrecision::from_name(s)
            .ok_or_else(|| format!("'{s}' is not a KV-cache precision (f16 or f32)"))
    }

    /// A byte count: digits with an optional binary suffix `K`, `M` or `G` (`512M` = 512 MiB).
    fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
        let bad = || format!("'{s}' is not a byte count (e.g. 1500000000, 512M, 2G)");
        let (digits, shift) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
            Some('K') => (&s[..s.len() - 1], 10),
            Some('M') => (&s[..s.len() - 1], 20),
            Some('G') => (&s[..s.len() - 1], 30),
            _ => (s, 0),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        n.checked_mul(1 << shift).ok_or_else(bad)
    }

    impl ModelArgs {
        pub fn load(&self) -> Result<Engine> {
            let opts = LoadOptions {
                context: self.context,
                max_gpu_bytes: self.max_gpu_bytes,
                kv: self.kv,
                ..Default::default()
            };
            pollster::block_on(Engine::load_file(&self.model, &opts))
        }

        /// Tune the kernels and compile the pipelines before the first answer, starting from the
        /// shapes measured by earlier runs on this adapter (only the winners are then compiled)
        /// and remembering the new ones. A missing or damaged file only means a full tune.
        pub fn warmup(&self, e: &mut Engine) -> Result<()> {
            let file = tuned_file();
            match (&file, self.retune) {
                (Some(f), false) => {
                    if let Ok(text) = std::fs::read_to_string(f) {
                        if let Err(err) = attend::kernels::tuned::import(&text) {
                            log::warn!("ignoring {}: {err}", f.display());
                        }
                    }
                }
                _ => attend::kernels::tuned::clear(),
            }
            pollster::block_on(e.warmup_with(self.tune))?;
            if let Some(f) = file {
                // Written beside and renamed, so concurrent runs never read half a file.
                let tmp = f.with_extension(format!("json.{}", std::process::id()));
                let saved = std::fs::create_dir_all(f.parent().unwrap_or(&f))
                    .and_then(|()| std::fs::write(&tmp, attend::kernels::tuned::export()))
                    .and_then(|()| std::fs::rename(&tmp, &f));
                if let Err(err) = saved {
                    let _ = std::fs::remove_file(&tmp);
                    log::warn!("could not save the tuned shapes to {}: {err}", f.display());
                }
            }
            Ok(())
        }
    }

    /// `$ATTEND_CACHE/tuned.json`, by default under `~/.cache/attend`.
    fn tuned_file() -> Option<PathBuf> {
        let dir = match std::env::var_os("ATTEND_CACHE") {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/attend"),
        };
        Some(dir.join("tuned.json"))
    }

    #[derive(Args, Debug)]
    struct InfoArgs {
        #[command(flatten)]
        model: ModelArgs,
        /// Print the info as JSON (the fields of `engine.info()` in the browser, without
        /// `wasm_heap_bytes`; `compile_s` and `pipelines` are 0: `info` compiles no kernels).
        #[arg(long)]
        json: bool,
    }

    #[derive(Args, Debug)]
    struct TokenizeArgs {
        /// GGUF file.
        #[arg(long, value_name = "PATH")]
        model: PathBuf,
        /// The text to tokenize.
        #[arg(long)]
        text: String,
        /// Split special-token text (`<|im_start|>`) into ordinary pieces instead of reading it
        /// as those tokens (transformers and llama.cpp parse it, as attend does by default).
        #[arg(long)]
        no_parse_special: bool,
    }

    #[derive(Args, Debug)]
    struct SplitArgs {
        /// GGUF file to split.
        #[arg(long, value_name = "PATH")]
        model: PathBuf,
        /// Tensors per shard.
        #[arg(long, value_name = "N")]
        max_tensors: usize,
        /// Directory for the shards.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    }

    pub fn main() -> ExitCode {
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
        let cli = Cli::parse();
        let result = match cli.command {
            Command::Adapters => adapters(),
            Command::Info(a) => info(&a),
            Command::Tokenize(a) => tokenize(&a),
            Command::Generate(a) => crate::generate::generate(&a),
            Command::Chat(a) => crate::generate::chat(&a),
            Command::Attention(a) => crate::attention::attention(&a),
            Command::Bench(a) => crate::bench::bench(&a),
            Command::Split(a) => split(&a),
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

    pub fn mib(b: u64) -> String {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    }

    /// `attend info`: the engine's [`attend::engine::EngineInfo`], the same object the browser's
    /// `engine.info()` returns, as text or JSON.
    fn info(a: &InfoArgs) -> Result<()> {
        let e = a.model.load()?;
        let i = e.info();
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&i).expect("info serializes")
            );
            return Ok(());
        }
        let p = &i.parameters;
        println!("model: {}", a.model.model.display());
        println!("architecture: {}", i.architecture);
        println!(
            "layers {} · d_model {} · heads {} (kv {}) · head_dim {} · ffn {} · vocab {} · trained context {}",
            p.layers, p.d_model, p.heads, p.kv_heads, p.head_dim, p.ffn, p.vocab, p.trained_context
        );
        println!(
            "rope: base {} (local {}) · scale {} · {} · dims {} · norm eps {} · sliding window {}",
            p.rope_base,
            p.rope_base_local,
            p.rope_scale,
            p.rope_layout,
            p.rope_dims,
            p.norm_eps,
            p.sliding_window
        );
        let mut scaling = Vec::new();
        if p.rope_factors != "none" {
            scaling.push(format!("frequency factors {}", p.rope_factors));
        }
        if p.rope_attn_factor != 1.0 {
            scaling.push(format!("attention factor {}", p.rope_attn_factor));
        }
        if p.no_rope_every > 0 {
            scaling.push(format!("no RoPE in every {}th layer", p.no_rope_every));
        }
        if !scaling.is_empty() {
            println!("rope scaling: {}", scaling.join(" · "));
        }
        if p.attn_softcap > 0.0 || p.final_softcap > 0.0 {
            println!(
                "soft-caps: attention {} · final logits {}",
                p.attn_softcap, p.final_softcap
            );
        }
        let types: Vec<String> = i
            .tensor_types
            .iter()
            .map(|t| format!("{}×{} ({})", t.ty, t.count, mib(t.bytes)))
            .collect();
        println!("tensor types: {}", types.join(", "));
        println!("context: {} tokens", i.context_length);
        println!("weight bytes: {} ({})", i.weight_bytes, mib(i.weight_bytes));
        println!(
            "kv-cache bytes: {} ({}, {})",
            i.kv_cache_bytes,
            mib(i.kv_cache_bytes),
            i.kv_precision
        );
        println!(
            "activation bytes: {} ({})",
            i.activation_bytes,
            mib(i.activation_bytes)
        );
        println!(
            "gpu bytes in use: {} ({}; {:.3} × weights+kv)",
            i.gpu_bytes,
            mib(i.gpu_bytes),
            i.gpu_bytes as f64 / (i.weight_bytes + i.kv_cache_bytes) as f64
        );
        // The terminal also gets the adapter's backend, driver, features and limits.
        println!("adapter: {}", e.gpu.adapter);
        Ok(())
    }

    fn tokenize(a: &TokenizeArgs) -> Result<()> {
        let file = attend::gguf::GgufFile::open(&a.model)?;
        let tok = attend::tokenizer::Tokenizer::from_gguf(file.header())?;
        attend::engine::check_prompt_bytes(&a.text)?;
        let ids = tok.encode(&a.text, true, !a.no_parse_special);
        println!("{}", serde_json::to_string(&ids).expect("ids serialize"));
        Ok(())
    }

    /// Re-write a model as shards of at most N tensors (small models; it holds the tensors in memory).
    fn split(a: &SplitArgs) -> Result<()> {
        use attend::gguf::{GgufFile, GgufWriter};
        let file = GgufFile::open(&a.model)?;
        let w = GgufWriter::copy_of(file.header(), |t| file.read_tensor(t))?;
        std::fs::create_dir_all(&a.out)?;
        let stem = a
            .model
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("model");
        for p in w.write_split(&a.out, stem, a.max_tensors.max(1))? {
            println!("{}", p.display());
        }
        Ok(())
    }
}
