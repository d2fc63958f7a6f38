//! SentencePiece-style BPE (`tokenizer.ggml.model = llama`): start from single characters and
//! repeatedly merge the adjacent pair whose concatenation is the highest-scoring token; characters
//! left without a token fall back to `<0xXX>` byte tokens (as llama.cpp's llm_tokenizer_spm).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::Vocab;

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Highest score first; on ties the leftmost pair.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

/// Encodes text whose spaces are already escaped to U+2581.
pub(super) fn encode(v: &Vocab, text: &str, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        let len = c.len_utf8();
        let next = if start + len == text.len() {
            -1
        } else {
            i as isize + 1
        };
        syms.push(Sym {
            start,
            len,
            prev: i as isize - 1,
            next,
        });
    }
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], l: isize, r: isize| {
        if l < 0 || r < 0 {
            return;
        }
        let (a, b) = (syms[l as usize], syms[r as usize]);
        let size = a.len + b.len;
        if let Some(id) = v.token_id(&text[a.start..a.start + size]) {
            heap.push(Bigram {
                score: v.scores[id as usize],
                left: l as usize,
                right: r as usize,
                size,
            });
        }
    };
    for i in 1..syms.len() {
        push(&mut heap, &syms, i as isize - 1, i as isize);
    }
    while let Some(Bigram {
        left, right, size, ..
    }) = heap.pop()
    {
        let (a, b) = (syms[left], syms[right]);
        if a.len == 0 || b.len == 0 || a.len + b.len != size {
            continue;
        }
        syms[left].len = size;
        syms[left].next = b.next;
        syms[right].len = 0;
        if b.next >= 0 {
            syms[b.next as usize].prev = left as isize;
        }
        push(&mut heap, &syms, syms[left].prev, left as isize);
        push(&mut heap, &syms, left as isize, syms[left].next);
    }
    let mut i = 0isize;
    while i >= 0 {
        let s = syms[i as usize];
        let piece = &text[s.start..s.start + s.len];
        match v.token_id(piece) {
            Some(id) => out.push(id),
            None => {
                for b in piece.bytes() {
                    if let Some(id) = v.byte_tokens[b as usize].or(v.unk) {
                        out.push(id);
                    }
                }
            }
        }
        i = s.next;
    }
}
