//! The test model for tool calls, shared by tests/tools.rs and tests/wasm_engine.rs: the tiny
//! random Qwen2 (tests/reference/tiny-qwen2.gguf) rewritten with Qwen2.5's tool-calling chat
//! template and `qwen2.context_length` 2048 instead of 512 (Qwen2.5's tool prompt alone is ~760
//! tokens of the small vocabulary; the weights are random, so positions past 512 are as good as
//! any).

use attend::gguf::{Gguf, GgufWriter, Value};

pub const QWEN25_TEMPLATE: &str = include_str!("../reference/templates/qwen2.5-instruct.jinja");

pub fn tiny_qwen2_with_tools() -> Vec<u8> {
    let bytes: &[u8] = include_bytes!("../reference/tiny-qwen2.gguf");
    let g = Gguf::parse(bytes).unwrap();
    let mut w = GgufWriter::with_metadata_of(&g).unwrap();
    w.add_metadata(
        "tokenizer.chat_template",
        Value::String(QWEN25_TEMPLATE.into()),
    );
    w.add_metadata("qwen2.context_length", Value::U32(2048));
    for t in &g.tensors {
        let at = (g.data_offsets[0] + t.offset) as usize;
        let data = bytes[at..at + t.byte_size() as usize].to_vec();
        w.add_tensor(&t.name, &t.dims, t.ty, data).unwrap();
    }
    w.to_bytes().unwrap()
}
