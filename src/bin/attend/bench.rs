//! `attend bench`: prefill N prompt tokens, then decode M greedy tokens; medians of several runs.

use crate::cli::{mib, ModelArgs};
use attend::{Error, Result};
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt tokens to prefill.
    #[arg(long, value_name = "N")]
    prompt_tokens: Option<usize>,
    /// Tokens to decode after the prompt.
    #[arg(long, value_name = "N")]
    gen_tokens: Option<u32>,
    /// Runs to take the median of.
    #[arg(long, value_name = "N", alias = "runs")]
    repeat: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Add GPU time per kernel (timestamp queries, where the adapter has them).
    #[arg(long)]
    profile: bool,
}

pub fn bench(a: &BenchArgs) -> Result<()> {
    let t0 = std::time::Instant::now();
    let mut e = a.model.load()?;
    let load_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    a.model.warmup(&mut e)?; // tunes the kernels and compiles the pipelines
    let compile_s = t1.elapsed().as_secs_f64();
    let (pipelines, pipeline_s) = (e.gpu.pipelines.len(), e.gpu.pipelines.create_seconds());
    let d = attend::bench::BenchOptions::default();
    let o = attend::bench::BenchOptions {
        prompt_tokens: a.prompt_tokens.unwrap_or(d.prompt_tokens),
        gen_tokens: a.gen_tokens.unwrap_or(d.gen_tokens),
        repeat: a.repeat.unwrap_or(d.repeat),
        profile: a.profile,
        ..d
    };
    let mut r = pollster::block_on(attend::bench::run(&mut e, &o))?;
    r.load_s = load_s;
    r.compile_s = compile_s;
    (r.pipelines, r.pipeline_s) = (pipelines, pipeline_s);
    let mut v = serde_json::to_value(&r).map_err(|e| Error::Invalid(e.to_string()))?;
    let model = a.model.model.display().to_string();
    v["model"] = json!(model);
    if a.json {
        println!("{v}");
        return Ok(());
    }
    println!("model    {model}");
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
        "sampled  {:>8.1} tok/s  (T 0.8, top-p 0.9, GPU candidates; {:.1} tok/s reading the logits row)",
        r.sampled_decode_tok_s, r.sampled_row_decode_tok_s
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
    println!(
        "pipeline {:>8.2} s     creating {} pipelines (the rest of compile: tuning shapes, warm-up)",
        r.pipeline_s, r.pipelines
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
