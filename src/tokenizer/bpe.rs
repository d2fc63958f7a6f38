//! Byte-level BPE (`tokenizer.ggml.model = gpt2`): merge the adjacent pair with the lowest merge
//! rank until none applies, with a priority queue over a linked list of symbols (as llama.cpp).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::Vocab;

/// Merge ranks, keyed by the ids of the two parts. Parts are vocabulary ids, or ids past the
/// vocabulary for merge parts that are not tokens themselves.
pub(super) struct Merges {
    pub parts: HashMap<String, u32>,
    pub ranks: HashMap<(u32, u32), u32>,
}

impl Merges {
    /// `merges` are "left right" strings in rank order (split at the first space after the first
    /// byte, like llama.cpp).
    pub fn new<'a>(
        vocab_ids: &HashMap<String, u32>,
        n_vocab: u32,
        merges: impl Iterator<Item = &'a str>,
    ) -> Merges {
        let mut parts = vocab_ids.clone();
        let mut next = n_vocab;
        let mut ranks = HashMap::new();
        let mut intern = |parts: &mut HashMap<String, u32>, s: &str| -> u32 {
            if let Some(&id) = parts.get(s) {
                return id;
            }
            parts.insert(s.to_string(), next);
            next += 1;
            next - 1
        };
        for (rank, m) in merges.enumerate() {
            let space = m.as_bytes().iter().skip(1).position(|&b| b == b' ');
            let (l, r) = match space {
                Some(p) => (&m[..p + 1], &m[p + 2..]),
                None => ("", ""),
            };
            let key = (intern(&mut parts, l), intern(&mut parts, r));
            ranks.entry(key).or_insert(rank as u32);
        }
        Merges { parts, ranks }
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
    part: Option<u32>,
}

/// Encodes one pre-tokenized word (already byte-mapped when the vocabulary is byte-level).
pub(super) fn encode_word(v: &Vocab, m: &Merges, word: &str, out: &mut Vec<u32>) {
    if word.is_empty() {
        return;
    }
    let pre = v.pre.as_ref();
    let whole = pre.is_some_and(|p| p.ignore_merges)
        || pre.is_some_and(|p| p.newline_words_whole) && word.bytes().all(|b| b == b'\n');
    if whole {
        if let Some(id) = v.token_id(word) {
            out.push(id);
            return;
        }
    }
    let mut syms: Vec<Sym> = Vec::with_capacity(word.len());
    for (i, (start, c)) in word.char_indices().enumerate() {
        let len = c.len_utf8();
        let next = if start + len == word.len() {
            -1
        } else {
            i as isize + 1
        };
        syms.push(Sym {
            start,
            len,
            prev: i as isize - 1,
            next,
            part: m.parts.get(&word[start..start + len]).copied(),
        });
    }
    // (rank, left, right, merged length): the lowest rank first, then the leftmost.
    let mut heap: BinaryHeap<Reverse<(u32, usize, usize, usize)>> = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<_>, syms: &[Sym], l: isize, r: isize| {
        if l < 0 || r < 0 {
            return;
        }
        let (a, b) = (syms[l as usize], syms[r as usize]);
        if let (Some(pa), Some(pb)) = (a.part, b.part) {
            if let Some(&rank) = m.ranks.get(&(pa, pb)) {
                heap.push(Reverse((rank, l as usize, r as usize, a.len + b.len)));
            }
        }
    };
    for i in 1..syms.len() {
        push(&mut heap, &syms, i as isize - 1, i as isize);
    }
    while let Some(Reverse((_, l, r, size))) = heap.pop() {
        let (a, b) = (syms[l], syms[r]);
        // Stale entry: one side was merged away or grew since it was queued.
        if a.len == 0 || b.len == 0 || a.len + b.len != size {
            continue;
        }
        let merged = &word[a.start..a.start + size];
        syms[l].len = size;
        syms[l].next = b.next;
        syms[l].part = m.parts.get(merged).copied();
        syms[r].len = 0;
        if b.next >= 0 {
            syms[b.next as usize].prev = l as isize;
        }
        push(&mut heap, &syms, syms[l].prev, l as isize);
        push(&mut heap, &syms, l as isize, syms[l].next);
    }
    let byte_encode = pre.is_none_or(|p| p.byte_encode);
    let mut i = 0isize;
    while i >= 0 {
        let s = syms[i as usize];
        let text = &word[s.start..s.start + s.len];
        match v.token_id(text) {
            Some(id) => out.push(id),
            // No token for this symbol: llama.cpp falls back to single-byte tokens.
            None => {
                for b in text.bytes() {
                    let id = if byte_encode {
                        if b.is_ascii() {
                            v.token_id(std::str::from_utf8(&[b]).unwrap_or(""))
                        } else {
                            None
                        }
                    } else {
                        v.byte_tokens[b as usize]
                    };
                    out.extend(id);
                }
            }
        }
        i = s.next;
    }
}
