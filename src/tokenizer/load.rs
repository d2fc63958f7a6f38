//! Building a [`Tokenizer`] from GGUF metadata, with llama.cpp's defaults and its by-text
//! detection of end-of-generation and other special tokens (llama_vocab::impl::load).

use std::collections::{HashMap, HashSet};

use super::*;

fn opt_id(g: &Gguf, key: &str, n: usize, default: Option<u32>) -> Result<Option<u32>> {
    Ok(match g.opt_u64(key)? {
        Some(id) if (id as usize) < n => Some(id as u32),
        Some(id) => {
            log::warn!("{key} = {id} is outside the vocabulary; keeping the default");
            default.filter(|&d| (d as usize) < n)
        }
        None => default.filter(|&d| (d as usize) < n),
    })
}

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];
/// Tokens llama.cpp recognizes by text as EOM / fill-in-the-middle markers (and so marks as control).
const MARKER_TEXTS: &[&[&str]] = &[
    &["<|eom_id|>"],
    &[
        "<|fim_prefix|>",
        "<fim-prefix>",
        "<fim_prefix>",
        "<｜fim▁begin｜>",
        "<PRE>",
        "▁<PRE>",
        "<|code_prefix|>",
        "<|prefix|>",
    ],
    &[
        "<|fim_suffix|>",
        "<fim-suffix>",
        "<fim_suffix>",
        "<｜fim▁hole｜>",
        "<SUF>",
        "▁<SUF>",
        "<|code_suffix|>",
        "<|suffix|>",
    ],
    &[
        "<|fim_middle|>",
        "<fim-middle>",
        "<fim_middle>",
        "<｜fim▁end｜>",
        "<MID>",
        "▁<MID>",
        "<|code_middle|>",
        "<|middle|>",
    ],
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    &[
        "<|fim_repo|>",
        "<|repo_name|>",
        "<fim-repo>",
        "<REPO>",
        "<reponame>",
    ],
    &["<|file_sep|>"],
];

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`).
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let model_name = g.str("tokenizer.ggml.model")?;
        let pre_name = g.get("tokenizer.ggml.pre").and_then(|v| v.as_str());
        let (model, pre_name) = match model_name {
            "gpt2" => (Model::Bpe, pre_name),
            "gemma4" => (Model::Bpe, Some("gemma4")),
            "llama" => (Model::Spm, None),
            other => {
                return Err(Error::Tokenizer(format!(
                    "tokenizer model '{other}' is not supported (gpt2, llama, gemma4 are)"
                )))
            }
        };
        let texts: Vec<String> = g
            .array("tokenizer.ggml.tokens")?
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some("") => Ok(format!("[EMPTY_{i}]")),
                Some(s) => Ok(s.to_string()),
                None => Err(Error::Tokenizer(
                    "tokenizer.ggml.tokens must hold strings".into(),
                )),
            })
            .collect::<Result<_>>()?;
        let n = texts.len();
        if n == 0 || n > u32::MAX as usize / 2 {
            return Err(Error::Tokenizer(format!("bad vocabulary size {n}")));
        }
        let mut scores = vec![0f32; n];
        if let Some(arr) = g.get("tokenizer.ggml.scores").and_then(|v| v.as_array()) {
            if arr.len() < n {
                return Err(Error::Tokenizer(format!(
                    "{} scores for {n} tokens",
                    arr.len()
                )));
            }
            for (s, v) in scores.iter_mut().zip(arr) {
                *s = v
                    .as_f64()
                    .ok_or_else(|| Error::Tokenizer("scores must be numbers".into()))?
                    as f32;
            }
        }
        let mut attrs = vec![NORMAL; n];
        if let Some(arr) = g
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
        {
            if arr.len() < n {
                return Err(Error::Tokenizer(format!(
                    "{} token types for {n} tokens",
                    arr.len()
                )));
            }
            for (a, v) in attrs.iter_mut().zip(arr) {
                *a = match v.as_i64() {
                    Some(1) => NORMAL,
                    Some(2) => UNKNOWN,
                    Some(3) => CONTROL,
                    Some(4) => USER_DEFINED,
                    Some(5) => UNUSED,
                    Some(6) => BYTE,
                    _ => 0,
                };
            }
        }
        let mut ids = HashMap::with_capacity(n);
        for (i, t) in texts.iter().enumerate() {
            ids.insert(t.clone(), i as u32);
        }

        // Defaults per model, then the metadata's word (as llama.cpp's llama_vocab::load).
        let (mut add_bos, mut add_eos, mut add_space_prefix) = (false, false, false);
        let (bos_d, eos_d, unk_d) = match model {
            Model::Spm => {
                add_bos = true;
                add_space_prefix = true;
                (Some(1), Some(2), Some(0))
            }
            Model::Bpe if model_name == "gemma4" => (None, None, None),
            Model::Bpe => (Some(11), Some(11), None),
        };
        let pre = match model {
            Model::Bpe => {
                let p = pretokenize::PreTokenizer::new(pre_name)?;
                if p.ignore_merges
                    && !["dbrx", "smaug-bpe", "chatglm-bpe", "glm4", "glm5"]
                        .contains(&p.name.as_str())
                {
                    add_bos = true; // llama3 family
                }
                Some(p)
            }
            Model::Spm => None,
        };
        if let Some(v) = g.opt_bool("tokenizer.ggml.add_space_prefix")? {
            add_space_prefix = v;
        }
        let bos = opt_id(g, "tokenizer.ggml.bos_token_id", n, bos_d)?;
        let eos = opt_id(g, "tokenizer.ggml.eos_token_id", n, eos_d)?;
        let unk = opt_id(g, "tokenizer.ggml.unknown_token_id", n, unk_d)?;
        let mut eot = opt_id(g, "tokenizer.ggml.eot_token_id", n, None)?;
        let eom = opt_id(g, "tokenizer.ggml.eom_token_id", n, None)?;
        if let Some(v) = g.opt_bool("tokenizer.ggml.add_bos_token")? {
            add_bos = v;
        }
        if let Some(v) = g.opt_bool("tokenizer.ggml.add_eos_token")? {
            add_eos = v;
        }
        if model_name == "gemma4" {
            add_bos = true;
        }

        // Tokens recognized by text: llama.cpp marks them as control, which changes how they split.
        let find = |list: &[&str]| list.iter().filter_map(|t| ids.get(*t).copied()).min();
        if eot.is_none() {
            eot = find(EOT_TEXTS);
        }
        for id in eot
            .into_iter()
            .chain(MARKER_TEXTS.iter().filter_map(|l| find(l)))
        {
            attrs[id as usize] |= CONTROL;
        }
        let mut eog: HashSet<u32> = HashSet::new();
        for t in EOG_TEXTS {
            if let Some(&id) = ids.get(*t) {
                eog.insert(id);
                attrs[id as usize] |= CONTROL;
            }
        }
        // FIM pad/repo/sep end generation too.
        for l in &MARKER_TEXTS[4..] {
            eog.extend(find(l));
        }
        eog.extend(eos.into_iter().chain(eot).chain(eom));
        for i in 0..n {
            if attrs[i] & CONTROL != 0 && texts[i].contains("unused") {
                attrs[i] |= UNUSED;
            }
        }
        let has = |eog: &HashSet<u32>, t: &str| ids.get(t).is_some_and(|id| eog.contains(id));
        let harmony = (has(&eog, "<|return|>") && has(&eog, "<|call|>"))
            || (has(&eog, "<|calls|>") && has(&eog, "<|flush|>"));
        if harmony && has(&eog, "<|end|>") {
            let id = ids["<|end|>"];
            eog.remove(&id);
            attrs[id as usize] = USER_DEFINED;
        }
        if (has(&eog, "<|tool_response>") || has(&eog, "<|plamo:eos|>")) && has(&eog, "</s>") {
            let id = ids["</s>"];
            eog.remove(&id);
            attrs[id as usize] = NORMAL;
        }

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| attrs[i as usize] & (CONTROL | USER_DEFINED | UNKNOWN) != 0)
            .collect();
        specials.sort_by_key(|&i| std::cmp::Reverse(texts[i as usize].len()));
        // Phi-3 strips whitespace after its special tokens (llama.cpp sets this by model name).
        let general_name = g
            .get("general.name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_lowercase();
        if general_name.contains("phi-3") || general_name.contains("phi3") {
            for &i in &specials {
                attrs[i as usize] |= RSTRIP;
            }
            for (t, on) in [
                ("</s>", true),
                ("<unk>", false),
                ("<s>", false),
                ("<|endoftext|>", false),
            ] {
                if let Some(&i) = ids.get(t) {
                    if on {
                        attrs[i as usize] |= RSTRIP
                    } else {
                        attrs[i as usize] &= !RSTRIP
                    }
                }
            }
        }
        // A text shared by several tokens stands for the one `ids` maps it to (as llama.cpp's lookup).
        let special_matcher = special::Matcher::new(specials.iter().map(|&i| {
            let t = &texts[i as usize];
            (ids.get(t) == Some(&i)).then_some(t.as_bytes())
        }));

        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = ids.get(&format!("<0x{b:02X}>")).copied();
            if slot.is_none() && b < 0x80 && model == Model::Spm {
                *slot = ids.get(&(b as u8 as char).to_string()).copied();
            }
        }

        let merges = match model {
            Model::Bpe => {
                let arr = g.array("tokenizer.ggml.merges")?;
                let strs = arr.iter().map(|v| v.as_str().unwrap_or(""));
                Some(bpe::Merges::new(&ids, n as u32, strs))
            }
            Model::Spm => None,
        };
        let byte_chars = unicode::byte_to_char_table();
        let byte_level = pre.as_ref().is_some_and(|p| p.byte_encode);
        let mut char_bytes: HashMap<char, u8> = HashMap::new();
        for (b, &c) in byte_chars.iter().enumerate() {
            char_bytes.insert(c, b as u8);
        }
        let pieces = (0..n)
            .map(|i| {
                let (t, a) = (&texts[i], attrs[i]);
                if a & BYTE != 0 {
                    if let Some(b) = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')) {
                        if let Ok(b) = u8::from_str_radix(b, 16) {
                            return vec![b];
                        }
                    }
                }
                if a & NORMAL == 0
                    || (model == Model::Bpe && !byte_level && t.starts_with("<0x") && t.len() == 6)
                {
                    if let Some(b) = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')) {
                        if let Ok(b) = u8::from_str_radix(b, 16) {
                            return vec![b];
                        }
                    }
                    return t.as_bytes().to_vec();
                }
                if byte_level {
                    let mut out = Vec::with_capacity(t.len());
                    for c in t.chars() {
                        match char_bytes.get(&c) {
                            Some(&b) => out.push(b),
                            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                        }
                    }
                    out
                } else {
                    t.replace('\u{2581}', " ").into_bytes()
                }
            })
            .collect();

        Ok(Tokenizer {
            model,
            vocab: Vocab {
                texts,
                ids,
                scores,
                attrs,
                byte_tokens,
                unk,
                pre,
            },
            merges,
            pieces,
            specials,
            special_matcher,
            bos,
            eos,
            eot,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
            byte_chars,
        })
    }
}
