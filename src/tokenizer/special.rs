//! Finding special-token texts in a prompt in one pass: an Aho–Corasick automaton over their bytes.
//!
//! llama.cpp's `tokenizer_st_partition` (which [`super::Tokenizer`] reproduces) searches the text once
//! per special token, so its cost is text length × number of special tokens; with the thousands of
//! reserved control tokens some vocabularies carry that made an 8 KB prompt take seconds. The
//! automaton reports every occurrence of every special text in time linear in the text plus the
//! number of occurrences; the partition then resolves them in llama.cpp's order (see
//! `Tokenizer::special_regions`).

use std::collections::VecDeque;

const NONE: u32 = u32::MAX;

pub(super) struct Matcher {
    /// Trie edges of each node, sorted by byte.
    children: Vec<Vec<(u8, u32)>>,
    /// Longest proper suffix of the node's string that is also a trie node.
    fail: Vec<u32>,
    /// The pattern ending exactly at this node (its rank), or NONE.
    out: Vec<u32>,
    /// Nearest node on the fail chain that ends a pattern, or NONE.
    dict: Vec<u32>,
    /// Byte length of each pattern, by rank.
    lens: Vec<usize>,
}

impl Matcher {
    /// `patterns[rank]`: the texts to find; `None` (or empty) ones are never reported.
    pub fn new<'a>(patterns: impl IntoIterator<Item = Option<&'a [u8]>>) -> Matcher {
        let mut m = Matcher {
            children: vec![Vec::new()],
            fail: vec![0],
            out: vec![NONE],
            dict: vec![NONE],
            lens: Vec::new(),
        };
        for (rank, p) in patterns.into_iter().enumerate() {
            m.lens.push(p.map_or(0, |p| p.len()));
            let Some(p) = p.filter(|p| !p.is_empty()) else {
                continue;
            };
            let mut node = 0u32;
            for &b in p {
                node = match m.goto(node, b) {
                    Some(n) => n,
                    None => {
                        let n = m.children.len() as u32;
                        m.children.push(Vec::new());
                        m.fail.push(0);
                        m.out.push(NONE);
                        m.dict.push(NONE);
                        let edges = &mut m.children[node as usize];
                        let at = edges.partition_point(|&(c, _)| c < b);
                        edges.insert(at, (b, n));
                        n
                    }
                };
            }
            if m.out[node as usize] == NONE {
                m.out[node as usize] = rank as u32;
            }
        }
        // Breadth-first: a node's fail link points to a shallower node, already complete.
        let mut queue: VecDeque<u32> = m.children[0].iter().map(|&(_, c)| c).collect();
        while let Some(u) = queue.pop_front() {
            for i in 0..m.children[u as usize].len() {
                let (b, c) = m.children[u as usize][i];
                let mut f = m.fail[u as usize];
                let target = loop {
                    if let Some(n) = m.goto(f, b) {
                        break n;
                    }
                    if f == 0 {
                        break 0;
                    }
                    f = m.fail[f as usize];
                };
                m.fail[c as usize] = target;
                m.dict[c as usize] = if m.out[target as usize] != NONE {
                    target
                } else {
                    m.dict[target as usize]
                };
                queue.push_back(c);
            }
        }
        m
    }

    fn goto(&self, node: u32, b: u8) -> Option<u32> {
        let edges = &self.children[node as usize];
        edges
            .binary_search_by_key(&b, |&(c, _)| c)
            .ok()
            .map(|i| edges[i].1)
    }

    /// Calls `f(start, rank)` for every occurrence of every pattern in `text` (overlapping ones
    /// included), in order of their end.
    pub fn find_all(&self, text: &[u8], mut f: impl FnMut(usize, usize)) {
        if self.children[0].is_empty() {
            return;
        }
        let mut state = 0u32;
        for (i, &b) in text.iter().enumerate() {
            loop {
                if let Some(n) = self.goto(state, b) {
                    state = n;
                    break;
                }
                if state == 0 {
                    break;
                }
                state = self.fail[state as usize];
            }
            let mut o = if self.out[state as usize] != NONE {
                state
            } else {
                self.dict[state as usize]
            };
            while o != NONE {
                let rank = self.out[o as usize] as usize;
                f(i + 1 - self.lens[rank], rank);
                o = self.dict[o as usize];
            }
        }
    }
}
