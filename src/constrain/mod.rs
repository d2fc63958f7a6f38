//! Constrained decoding: what the model may write next. [`JsonConstraint`] keeps generated text
//! valid compact JSON under a [`Schema`] (OpenAI's `response_format`), byte by byte, so every
//! finished answer parses and validates. The engine asks [`Constraint::allows`] of each candidate
//! token's bytes (`Engine::generate_constrained`, `src/engine/pick.rs`).

pub mod schema;
pub mod state;
#[cfg(test)]
mod tests;

pub use schema::{Node, Schema};
pub use state::JsonState;
use std::sync::Arc;

/// A rule on the generated text, asked about each token's bytes.
pub trait Constraint {
    /// Whether these bytes may come next (the state is unchanged).
    fn allows(&self, bytes: &[u8]) -> bool;
    /// Take the bytes of the token that was picked.
    fn advance(&mut self, bytes: &[u8]) -> bool;
    /// Whether the text so far is complete: the end-of-generation token is allowed now (and only
    /// now).
    fn is_complete(&self) -> bool;
    /// Complete, and nothing may follow: the answer ends here.
    fn is_done(&self) -> bool;
}

/// Valid JSON under a schema.
#[derive(Debug, Clone)]
pub struct JsonConstraint {
    state: JsonState,
}

impl JsonConstraint {
    pub fn new(schema: Arc<Schema>) -> JsonConstraint {
        JsonConstraint {
            state: JsonState::new(schema),
        }
    }
    /// Any JSON object.
    pub fn any_object() -> JsonConstraint {
        JsonConstraint::new(Arc::new(Schema::any_object()))
    }
    /// Compile a JSON Schema (see [`schema`] for the subset); the error names what is wrong.
    pub fn from_schema(schema: &serde_json::Value) -> Result<JsonConstraint, String> {
        Ok(JsonConstraint::new(Arc::new(Schema::compile(schema)?)))
    }
}

impl Constraint for JsonConstraint {
    fn allows(&self, bytes: &[u8]) -> bool {
        self.state.allows(bytes)
    }
    fn advance(&mut self, bytes: &[u8]) -> bool {
        self.state.advance(bytes)
    }
    fn is_complete(&self) -> bool {
        self.state.is_complete()
    }
    fn is_done(&self) -> bool {
        self.state.is_done()
    }
}

/// Which tokens of the vocabulary `c` allows next, by id: `pieces[id]` are the token's bytes,
/// `special[id]` marks control tokens (never allowed) and `eog[id]` end-of-generation tokens
/// (allowed once the text is complete). Tokens are sorted by their first byte's verdict first,
/// so most are refused without cloning the state.
pub fn allowed_ids<'a>(
    c: &dyn Constraint,
    vocab: usize,
    piece: impl Fn(u32) -> &'a [u8],
    special: impl Fn(u32) -> bool,
    eog: impl Fn(u32) -> bool,
) -> Vec<u32> {
    let mut first: [Option<bool>; 256] = [None; 256];
    let complete = c.is_complete();
    (0..vocab as u32)
        .filter(|&id| {
            if eog(id) {
                return complete;
            }
            let b = piece(id);
            if b.is_empty() || special(id) {
                return false;
            }
            let ok = *first[b[0] as usize].get_or_insert_with(|| c.allows(&b[..1]));
            ok && (b.len() == 1 || c.allows(b))
        })
        .collect()
}

/// A boxed constraint is one (a request picks its constraint at run time).
impl<C: Constraint + ?Sized> Constraint for Box<C> {
    fn allows(&self, bytes: &[u8]) -> bool {
        (**self).allows(bytes)
    }
    fn advance(&mut self, bytes: &[u8]) -> bool {
        (**self).advance(bytes)
    }
    fn is_complete(&self) -> bool {
        (**self).is_complete()
    }
    fn is_done(&self) -> bool {
        (**self).is_done()
    }
}
