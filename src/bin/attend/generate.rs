//! `attend generate` (one prompt, streamed) and `attend chat` (an interactive conversation).

use crate::cli::ModelArgs;
use attend::chat::Message;
use attend::constrain::JsonConstraint;
use attend::engine::{Engine, GenParams, GenStats, Token};
use attend::openai::request::Sampling;
use attend::sampler::SamplerConfig;
use attend::{Error, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Sampling and stopping, shared by `generate` and `chat`.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_tokens: u32,
    /// 0 is greedy (deterministic).
    #[arg(
        long,
        value_name = "T",
        default_value_t = 0.7,
        allow_negative_numbers = true
    )]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens reaching this probability mass, in (0, 1].
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    top_p: Option<f32>,
    /// Keep only the K most likely tokens (0: off).
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    top_k: Option<i64>,
    /// Drop tokens below this fraction of the most likely one's probability.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    min_p: Option<f32>,
    /// CTRL-style penalty on tokens already seen (1: off).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    repetition_penalty: Option<f32>,
    /// OpenAI-style: subtracted once from every token already seen (-2..2).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    presence_penalty: Option<f32>,
    /// OpenAI-style: subtracted per occurrence of a token already seen (-2..2).
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    frequency_penalty: Option<f32>,
    /// Seed for reproducible sampling.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Stop before this text (may be repeated).
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Keep generating through end-of-generation tokens.
    #[arg(long)]
    ignore_eos: bool,
}

impl SamplingArgs {
    /// Checked like an OpenAI request's fields (the same limits and messages).
    fn params(&self) -> Result<GenParams> {
        let s = Sampling {
            max_tokens: Some(self.max_tokens as i64),
            temperature: Some(self.temperature),
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            stop: Some(attend::openai::StopSequences::Many(self.stop.clone())),
            seed: self.seed.map(|s| s as i64),
            ..Default::default()
        };
        s.validate()?;
        Ok(GenParams {
            max_tokens: self.max_tokens,
            sampler: SamplerConfig {
                seed: self.seed,
                ..s.sampler_config()
            },
            stop: self.stop.clone(),
            ignore_eog: self.ignore_eos,
            ..Default::default()
        })
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Text,
    Jsonl,
}

/// A prompt given as text (raw or one chat turn) or as token ids.
#[derive(Args, Debug)]
pub struct PromptArgs {
    /// The prompt (raw text unless --chat; special-token text in it is read as those tokens).
    #[arg(
        long,
        required_unless_present = "prompt_ids",
        conflicts_with = "prompt_ids"
    )]
    prompt: Option<String>,
    /// The prompt as comma-separated token ids.
    #[arg(long, value_name = "IDS")]
    prompt_ids: Option<String>,
    /// Wrap the prompt in the model's chat template as one user turn.
    #[arg(long)]
    chat: bool,
    /// System message (with --chat).
    #[arg(long, value_name = "TEXT", requires = "chat")]
    system: Option<String>,
    /// Split special-token text in a raw --prompt into ordinary pieces.
    #[arg(long)]
    no_parse_special: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    prompt: PromptArgs,
    /// Print the K most likely tokens with their log-probabilities at each step (jsonl).
    #[arg(long, value_name = "K", default_value_t = 0)]
    top_logprobs: usize,
    /// text: the answer as it streams; jsonl: one JSON line per token, then a summary line.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Constrain the answer to one JSON object (compact; stops when the object closes).
    #[arg(long, conflicts_with = "json_schema")]
    json: bool,
    /// Constrain the answer to JSON valid under the JSON Schema in FILE (the subset in the
    /// README's "The OpenAI-shaped API").
    #[arg(long, value_name = "FILE")]
    json_schema: Option<std::path::PathBuf>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// The `--json` / `--json-schema FILE` constraint, if any (read before the model loads).
fn constraint(a: &GenerateArgs) -> Result<Option<JsonConstraint>> {
    if a.json {
        return Ok(Some(JsonConstraint::any_object()));
    }
    let Some(path) = &a.json_schema else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("--json-schema {}: {e}", path.display())))?;
    let schema: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("--json-schema {}: {e}", path.display())))?;
    JsonConstraint::from_schema(&schema)
        .map(Some)
        .map_err(|e| Error::Invalid(format!("--json-schema {}: {e}", path.display())))
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// System message of the conversation (also: /system TEXT).
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

pub fn prompt_ids(e: &Engine, a: &PromptArgs) -> Result<Vec<u32>> {
    if let Some(ids) = &a.prompt_ids {
        return ids
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| Error::Invalid(format!("--prompt-ids: '{s}' is not a token id")))
            })
            .collect();
    }
    let text = a.prompt.as_deref().unwrap_or_default();
    if a.chat {
        let mut messages = Vec::new();
        if let Some(sys) = &a.system {
            messages.push(Message::system(sys.as_str()));
        }
        messages.push(Message::user(text));
        e.chat_prompt(&messages)
    } else {
        e.encode_raw(text, !a.no_parse_special)
    }
}

fn stats_line(s: &GenStats) -> String {
    format!(
        "[{} prompt tokens ({} cached), {:.1} tok/s prefill · {} generated, {:.1} tok/s decode · {}]",
        s.prompt_tokens,
        s.reused_tokens,
        s.prefill_tok_s(),
        s.generated_tokens,
        s.decode_tok_s(),
        s.finish_reason.as_str()
    )
}

pub fn generate(a: &GenerateArgs) -> Result<()> {
    let mut p = a.sampling.params()?;
    p.top_logprobs = a.top_logprobs;
    let mut constraint = constraint(a)?;
    let mut e = a.model.load()?;
    // A prompt that cannot run fails before the slow warmup.
    let prompt = prompt_ids(&e, &a.prompt)?;
    e.check_prompt(&prompt)?;
    a.model.warmup(&mut e)?; // tunes the kernels and compiles the pipelines
    let jsonl = a.output == Output::Jsonl;
    let stdout = std::io::stdout();
    let on = constraint.as_mut();
    let stats = pollster::block_on(e.generate_maybe_constrained(&prompt, &p, on, |t| {
        let mut out = stdout.lock();
        if jsonl {
            let mut line = json!({ "id": t.id, "text": t.text });
            if p.top_logprobs > 0 {
                line["top_logprobs"] = json!(t
                    .top_logprobs
                    .iter()
                    .map(|&(i, l)| json!([i, l]))
                    .collect::<Vec<_>>());
                line["logprob"] = json!(t.logprob);
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
                "cached_tokens": stats.reused_tokens,
                "generated_tokens": stats.generated_tokens,
                "prefill_tok_s": stats.prefill_tok_s(),
                "decode_tok_s": stats.decode_tok_s(),
                "finish_reason": stats.finish_reason.as_str(),
            })
        );
    } else {
        println!();
        eprintln!("{}", stats_line(&stats));
    }
    Ok(())
}

/// Set by Ctrl-C while an answer is being generated: the generation loop stops at the next token.
static STOP: AtomicBool = AtomicBool::new(false);
/// Whether an answer is being generated (Ctrl-C then stops it; otherwise it quits).
static ANSWERING: AtomicBool = AtomicBool::new(false);

/// What one input line of the chat asks for.
#[derive(Debug, PartialEq, Eq)]
enum Input<'a> {
    Say(&'a str),
    Reset,
    System(&'a str),
    Help,
    Quit,
    Unknown(&'a str),
    Empty,
}

fn parse_input(line: &str) -> Input<'_> {
    let line = line.trim_end_matches(['\n', '\r']);
    let Some(cmd) = line.trim_start().strip_prefix('/') else {
        return if line.trim().is_empty() {
            Input::Empty
        } else {
            Input::Say(line)
        };
    };
    let (name, rest) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
    match name {
        "reset" | "clear" => Input::Reset,
        "system" => Input::System(rest.trim()),
        "help" | "?" => Input::Help,
        "exit" | "quit" | "bye" => Input::Quit,
        _ => Input::Unknown(name),
    }
}

const CHAT_HELP: &str = "commands: /reset (forget the conversation), /system TEXT (new system \
message; resets), /exit; Ctrl-C stops an answer, Ctrl-D quits";

pub fn chat(a: &ChatArgs) -> Result<()> {
    let p = a.sampling.params()?;
    let mut e = a.model.load()?;
    a.model.warmup(&mut e)?; // tunes the kernels and compiles the pipelines
    ctrlc::set_handler(|| {
        if ANSWERING.load(Ordering::SeqCst) {
            STOP.store(true, Ordering::SeqCst);
        } else {
            eprintln!();
            std::process::exit(130);
        }
    })
    .map_err(|err| Error::Invalid(format!("cannot handle Ctrl-C: {err}")))?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("{CHAT_HELP}");
    }
    let mut system = a.system.clone();
    let mut history: Vec<Message> = Vec::new();
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(()); // end of input
        }
        let text = match parse_input(&line) {
            Input::Empty => continue,
            Input::Quit => return Ok(()),
            Input::Help => {
                eprintln!("{CHAT_HELP}");
                continue;
            }
            Input::Unknown(c) => {
                eprintln!("[unknown command /{c}; {CHAT_HELP}]");
                continue;
            }
            Input::Reset => {
                history.clear();
                eprintln!("[conversation reset]");
                continue;
            }
            Input::System(s) => {
                system = (!s.is_empty()).then(|| s.to_string());
                history.clear();
                eprintln!(
                    "[system message {}; conversation reset]",
                    if system.is_some() { "set" } else { "cleared" }
                );
                continue;
            }
            Input::Say(t) => t.to_string(),
        };
        history.push(Message::user(text));
        let mut messages: Vec<Message> =
            system.iter().map(|s| Message::system(s.as_str())).collect();
        messages.extend(history.iter().cloned());
        let prompt = match e.chat_prompt(&messages).and_then(|p| {
            e.check_prompt(&p)?;
            Ok(p)
        }) {
            Ok(p) => p,
            Err(err) => {
                // The turn cannot run (e.g. the conversation outgrew the context): say so, keep going.
                history.pop();
                eprintln!("[{err}; /reset starts over]");
                continue;
            }
        };
        STOP.store(false, Ordering::SeqCst);
        ANSWERING.store(true, Ordering::SeqCst);
        let stdout = std::io::stdout();
        let result = pollster::block_on(e.generate(&prompt, &p, |t: &Token| {
            let mut out = stdout.lock();
            let _ = write!(out, "{}", t.text);
            let _ = out.flush();
            !STOP.load(Ordering::SeqCst)
        }));
        ANSWERING.store(false, Ordering::SeqCst);
        println!();
        let stats = result?;
        eprintln!("{}", stats_line(&stats));
        // A stopped answer stays in the conversation as far as it got.
        history.push(Message::assistant(stats.text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_commands_parse() {
        assert_eq!(parse_input("hello /there\n"), Input::Say("hello /there"));
        assert_eq!(parse_input("/reset\n"), Input::Reset);
        assert_eq!(
            parse_input("/system Be brief.\n"),
            Input::System("Be brief.")
        );
        assert_eq!(parse_input("/system\n"), Input::System(""));
        assert_eq!(parse_input("/quit"), Input::Quit);
        assert_eq!(parse_input("/frob x"), Input::Unknown("frob"));
        assert_eq!(parse_input("  \n"), Input::Empty);
    }
}
