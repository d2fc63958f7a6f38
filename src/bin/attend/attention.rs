//! `attend attention`: the attention lens of one token (see `attend::engine::Attention`).

use crate::cli::ModelArgs;
use crate::generate::{prompt_ids, PromptArgs};
use attend::engine::AttentionQuery;
use attend::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct AttentionArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    prompt: PromptArgs,
    /// The query token: an index into the prompt's token list (as `attend tokenize` prints it).
    #[arg(long, value_name = "I")]
    token: u32,
    /// Only this layer (default: every layer).
    #[arg(long, value_name = "L")]
    layer: Option<u32>,
    /// Only this head (default: every head).
    #[arg(long, value_name = "H")]
    head: Option<u32>,
    /// Print one JSON object {tokens, query, weights[layer][head][key]} instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn attention(a: &AttentionArgs) -> Result<()> {
    let query = AttentionQuery {
        token: a.token,
        layer: a.layer,
        head: a.head,
    };
    let mut e = a.model.load()?;
    let ids = prompt_ids(&e, &a.prompt)?;
    let att = pollster::block_on(e.attention(&ids, &query))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&att).expect("attention serializes")
        );
    } else {
        print!("{}", att.table(5));
    }
    Ok(())
}
