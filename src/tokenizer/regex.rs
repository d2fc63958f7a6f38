//! A small backtracking regex engine for pre-tokenizer patterns, and the splitter llama.cpp applies
//! with them.
//!
//! It takes llama.cpp's pattern strings verbatim (alternation, groups, `(?i:)`, lookahead, classes
//! with `\p{L}`/`\p{N}`/`\p{P}`/`\p{S}`/`\p{M}`, `\s`, ranges, greedy quantifiers, `$`) and matches
//! leftmost-first like ECMAScript/PCRE, on code points, with llama.cpp's Unicode tables. That keeps
//! the wasm bundle small (no `regex`/`fancy-regex` and their Unicode tables) and matches llama.cpp
//! bit for bit, including its character classification.

use super::unicode::{self, LETTER, MARK, NUMBER, PUNCTUATION, SYMBOL};
use crate::{Error, Result};

#[derive(Clone, Debug)]
enum Item {
    Range(u32, u32),
    Category(u8),
    Space,
    NotSpace,
    Digit,
}

#[derive(Clone, Debug)]
struct Class {
    negated: bool,
    items: Vec<Item>,
}

impl Class {
    fn matches(&self, c: u32) -> bool {
        let hit = self.items.iter().any(|it| match *it {
            Item::Range(a, b) => a <= c && c <= b,
            Item::Category(m) => unicode::category(c) & m != 0,
            Item::Space => unicode::is_whitespace(c),
            Item::NotSpace => !unicode::is_whitespace(c),
            Item::Digit => (b'0' as u32..=b'9' as u32).contains(&c),
        });
        hit != self.negated
    }
    fn single(items: Vec<Item>) -> Self {
        Class {
            negated: false,
            items,
        }
    }
}

#[derive(Clone, Debug)]
enum Node {
    Set(Class),
    /// Alternatives, each a sequence; a plain group is a one-branch `Alt`.
    Alt(Vec<Vec<Node>>),
    Repeat(Box<Node>, usize, usize),
    Look(Vec<Node>, bool),
    Start,
    End,
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub struct Regex {
    root: Vec<Node>,
    /// Set when the whole pattern is one sequence that starts with an unbounded greedy run of one
    /// class (`\s+$`, `\p{N}+…`): a failed match at a position then rules out the rest of that run.
    lead_run: Option<Class>,
}

struct Parser<'a> {
    p: &'a [char],
    i: usize,
    pattern: &'a str,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> Error {
        Error::Tokenizer(format!(
            "pre-tokenizer regex '{}': {what} at {}",
            self.pattern, self.i
        ))
    }
    fn peek(&self) -> Option<char> {
        self.p.get(self.i).copied()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn alternation(&mut self, ci: bool) -> Result<Vec<Vec<Node>>> {
        let mut alts = vec![self.sequence(ci)?];
        while self.eat('|') {
            alts.push(self.sequence(ci)?);
        }
        Ok(alts)
    }

    fn sequence(&mut self, ci: bool) -> Result<Vec<Node>> {
        let mut seq = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom(ci)?;
            let node = self.quantifier(atom)?;
            seq.push(node);
        }
        Ok(seq)
    }

    fn quantifier(&mut self, atom: Node) -> Result<Node> {
        let (min, max) = match self.peek() {
            Some('?') => (0, 1),
            Some('*') => (0, usize::MAX),
            Some('+') => (1, usize::MAX),
            Some('{') => {
                self.i += 1;
                let min = self.number()?;
                let max = if self.eat(',') {
                    if self.peek() == Some('}') {
                        usize::MAX
                    } else {
                        self.number()?
                    }
                } else {
                    min
                };
                if !self.eat('}') {
                    return Err(self.err("expected '}'"));
                }
                self.i -= 1;
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.i += 1;
        if matches!(self.peek(), Some('?') | Some('+')) {
            return Err(self.err("lazy/possessive quantifiers are not supported"));
        }
        Ok(Node::Repeat(Box::new(atom), min, max))
    }

    fn number(&mut self) -> Result<usize> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.i += 1;
        }
        let s: String = self.p[start..self.i].iter().collect();
        s.parse().map_err(|_| self.err("expected a number"))
    }

    fn atom(&mut self, ci: bool) -> Result<Node> {
        let c = self.peek().ok_or_else(|| self.err("unexpected end"))?;
        self.i += 1;
        Ok(match c {
            '(' => {
                let (kind, ci) = if self.eat('?') {
                    if self.eat(':') {
                        ('g', ci)
                    } else if self.eat('=') {
                        ('=', ci)
                    } else if self.eat('!') {
                        ('!', ci)
                    } else if self.eat('i') && self.eat(':') {
                        ('g', true)
                    } else {
                        return Err(self.err("unsupported group"));
                    }
                } else {
                    ('g', ci)
                };
                let alts = self.alternation(ci)?;
                if !self.eat(')') {
                    return Err(self.err("expected ')'"));
                }
                match kind {
                    'g' => Node::Alt(alts),
                    k => Node::Look(vec![Node::Alt(alts)], k == '!'),
                }
            }
            '[' => Node::Set(self.class(ci)?),
            '.' => Node::Set(Class {
                negated: true,
                items: vec![Item::Range('\n' as u32, '\n' as u32)],
            }),
            '^' => Node::Start,
            '$' => Node::End,
            '\\' => {
                let item = self.escape()?;
                Node::Set(Class::single(vec![item]).with_case(ci))
            }
            c => Node::Set(Class::single(vec![Item::Range(c as u32, c as u32)]).with_case(ci)),
        })
    }

    /// After a backslash: a class shorthand, a Unicode category or an escaped literal.
    fn escape(&mut self) -> Result<Item> {
        let c = self.peek().ok_or_else(|| self.err("dangling '\\'"))?;
        self.i += 1;
        let lit = |c: char| Item::Range(c as u32, c as u32);
        Ok(match c {
            's' => Item::Space,
            'S' => Item::NotSpace,
            'd' => Item::Digit,
            'n' => lit('\n'),
            'r' => lit('\r'),
            't' => lit('\t'),
            'f' => lit('\u{c}'),
            'v' => lit('\u{b}'),
            'p' => {
                if !self.eat('{') {
                    return Err(self.err("expected '{' after \\p"));
                }
                let start = self.i;
                while matches!(self.peek(), Some(c) if c != '}') {
                    self.i += 1;
                }
                let name: String = self.p[start..self.i].iter().collect();
                self.i += 1;
                Item::Category(match name.as_str() {
                    "L" => LETTER,
                    "N" => NUMBER,
                    "P" => PUNCTUATION,
                    "S" => SYMBOL,
                    "M" => MARK,
                    _ => return Err(self.err(&format!("unsupported class \\p{{{name}}}"))),
                })
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(self.err(&format!("unsupported escape \\{c}")))
            }
            c => lit(c),
        })
    }

    fn class(&mut self, ci: bool) -> Result<Class> {
        let negated = self.eat('^');
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let c = self.peek().ok_or_else(|| self.err("unterminated class"))?;
            if c == ']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            self.i += 1;
            let item = if c == '\\' {
                self.escape()?
            } else {
                Item::Range(c as u32, c as u32)
            };
            // A range `a-z` (a '-' before ']' is a literal).
            if let Item::Range(lo, _) = item {
                if self.peek() == Some('-') && self.p.get(self.i + 1).is_some_and(|&n| n != ']') {
                    self.i += 1;
                    let hi = self.peek().unwrap();
                    self.i += 1;
                    let hi = if hi == '\\' {
                        match self.escape()? {
                            Item::Range(h, _) => h,
                            _ => return Err(self.err("bad range end")),
                        }
                    } else {
                        hi as u32
                    };
                    items.push(Item::Range(lo, hi));
                    continue;
                }
            }
            items.push(item);
        }
        Ok(Class { negated, items }.with_case(ci))
    }
}

impl Class {
    /// Under `(?i:)`: ASCII letters match both cases.
    fn with_case(mut self, ci: bool) -> Self {
        if ci {
            let mut extra = Vec::new();
            for it in &self.items {
                if let Item::Range(a, b) = *it {
                    for c in a..=b.min(0x7F) {
                        let ch = c as u8;
                        if ch.is_ascii_alphabetic() {
                            let o = (ch ^ 0x20) as u32;
                            extra.push(Item::Range(o, o));
                        }
                    }
                }
            }
            self.items.extend(extra);
        }
        self
    }
}

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = Parser {
            p: &chars,
            i: 0,
            pattern,
        };
        let alts = p.alternation(false)?;
        if p.i != chars.len() {
            return Err(p.err("unbalanced ')'"));
        }
        let lead_run = match alts.as_slice() {
            [seq] => match seq.first() {
                Some(Node::Repeat(inner, _, usize::MAX)) => match &**inner {
                    Node::Set(c) => Some(c.clone()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        Ok(Regex {
            root: vec![Node::Alt(alts)],
            lead_run,
        })
    }

    /// The first match at or after `from`: (start, end).
    ///
    /// Trying every start position is quadratic on a pattern like `\s+$` over a long run of spaces
    /// that does not reach the end (each try runs to the end of the run and gives back one space
    /// at a time). When the pattern starts with an unbounded greedy run of a class, a failed try at
    /// `s` inside a run also settles every later start in that run: from there the run can only end
    /// at the same places, all already tried with the same rest of the pattern (which, without
    /// captures or look-behind, depends only on where it starts). So the search skips the run.
    fn find_from(&self, text: &[u32], from: usize) -> Option<(usize, usize)> {
        let mut s = from;
        while s < text.len() {
            if let Some(e) = self.match_at(text, s) {
                return Some((s, e));
            }
            match &self.lead_run {
                Some(c) if c.matches(text[s]) => {
                    s += 1;
                    while s < text.len() && c.matches(text[s]) {
                        s += 1;
                    }
                }
                _ => s += 1,
            }
        }
        None
    }

    /// The end of the first (leftmost-first) match starting exactly at `pos`.
    fn match_at(&self, text: &[u32], pos: usize) -> Option<usize> {
        let mut found = None;
        let m = Matcher { text };
        m.seq(&self.root, pos, &mut |e| {
            found = Some(e);
            true
        });
        found
    }

    /// Splits `text[..]` like llama.cpp's `unicode_regex_split_stl`: every match is a piece, and so
    /// is every non-empty stretch between matches. Returns piece lengths in code points.
    pub fn split(&self, text: &[u32], out: &mut Vec<usize>) {
        let n = text.len();
        let (mut last, mut start) = (0, 0);
        while start < n {
            let Some((s, e)) = self.find_from(text, start) else {
                break;
            };
            if e == s {
                start = s + 1;
                continue;
            }
            if s > last {
                out.push(s - last);
            }
            out.push(e - s);
            last = e;
            start = e;
        }
        if last < n {
            out.push(n - last);
        }
    }
}

struct Matcher<'t> {
    text: &'t [u32],
}

impl Matcher<'_> {
    /// Matches `nodes` at `pos`, then calls `k` with the end; backtracks while `k` says no.
    fn seq(&self, nodes: &[Node], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        let Some((first, rest)) = nodes.split_first() else {
            return k(pos);
        };
        let text = self.text;
        match first {
            Node::Set(c) => pos < text.len() && c.matches(text[pos]) && self.seq(rest, pos + 1, k),
            Node::Alt(alts) => alts
                .iter()
                .any(|a| self.seq(a, pos, &mut |p| self.seq(rest, p, k))),
            Node::Repeat(inner, min, max) => {
                if let Node::Set(c) = &**inner {
                    // Greedy run of one class: longest first, then give back one at a time.
                    let mut end = pos;
                    while end < text.len() && end - pos < *max && c.matches(text[end]) {
                        end += 1;
                    }
                    if end - pos < *min {
                        return false;
                    }
                    (pos + min..=end).rev().any(|e| self.seq(rest, e, k))
                } else {
                    self.repeat(inner, *min, *max, 0, pos, rest, k)
                }
            }
            Node::Look(inner, negate) => {
                let found = self.seq(inner, pos, &mut |_| true);
                found != *negate && self.seq(rest, pos, k)
            }
            Node::Start => pos == 0 && self.seq(rest, pos, k),
            Node::End => pos == text.len() && self.seq(rest, pos, k),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn repeat(
        &self,
        inner: &Node,
        min: usize,
        max: usize,
        count: usize,
        pos: usize,
        rest: &[Node],
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        if count < max {
            let one = std::slice::from_ref(inner);
            let more = self.seq(one, pos, &mut |p| {
                (p != pos || count < min) && self.repeat(inner, min, max, count + 1, p, rest, k)
            });
            if more {
                return true;
            }
        }
        count >= min && self.seq(rest, pos, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pattern: &str, text: &str) -> Vec<String> {
        let re = Regex::new(pattern).unwrap();
        let cps: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let mut lens = Vec::new();
        re.split(&cps, &mut lens);
        let mut out = Vec::new();
        let mut at = 0;
        for l in lens {
            out.push(
                cps[at..at + l]
                    .iter()
                    .map(|&c| char::from_u32(c).unwrap())
                    .collect(),
            );
            at += l;
        }
        out
    }

    #[test]
    fn gpt2_pattern() {
        let p = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
        assert_eq!(
            split(p, "Hello world's  end!!\n\nx  "),
            ["Hello", " world", "'s", " ", " end", "!!", "\n", "\n", "x", "  "]
        );
    }

    #[test]
    fn llama3_pattern() {
        let p = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
        assert_eq!(
            split(p, "I'M 12345 ok\n\n  x"),
            ["I", "'M", " ", "123", "45", " ok", "\n\n", " ", " x"]
        );
    }

    #[test]
    fn unsupported_is_an_error() {
        assert!(Regex::new("\\p{Lu}").is_err());
        assert!(Regex::new("a+?").is_err());
    }
}

#[cfg(test)]
mod linear_tests {
    use super::*;

    fn naive_split(re: &Regex, text: &[u32]) -> Vec<usize> {
        let n = text.len();
        let (mut last, mut start, mut out) = (0, 0, Vec::new());
        while start < n {
            let Some((s, e)) = (start..n).find_map(|s| re.match_at(text, s).map(|e| (s, e))) else {
                break;
            };
            if e == s {
                start = s + 1;
                continue;
            }
            if s > last {
                out.push(s - last);
            }
            out.push(e - s);
            last = e;
            start = e;
        }
        if last < n {
            out.push(n - last);
        }
        out
    }

    #[test]
    fn skipping_runs_changes_nothing() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet: Vec<u32> = " \n1a!".chars().map(|c| c as u32).collect();
        for p in [
            "\\s+$",
            "\\s*$",
            "\\p{N}+a",
            "\\s+(?!\\S)",
            "[ a]+1|!",
            "\\s{2,}1",
        ] {
            let re = Regex::new(p).unwrap();
            for _ in 0..3000 {
                let len = (next() % 24) as usize;
                let text: Vec<u32> = (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect();
                let mut got = Vec::new();
                re.split(&text, &mut got);
                assert_eq!(got, naive_split(&re, &text), "{p} on {text:?}");
            }
        }
    }

    #[test]
    fn trailing_space_pattern_is_linear() {
        // deepseek-llm's `\s+$` over 200,000 spaces that do not reach the end: each start position
        // used to scan to the end of the run (minutes); now one pass.
        let re = Regex::new("\\s+$").unwrap();
        let mut text = vec![' ' as u32; 200_000];
        text.push('1' as u32);
        let start = std::time::Instant::now();
        let mut out = Vec::new();
        re.split(&text, &mut out);
        let took = start.elapsed();
        assert_eq!(out, [200_001]);
        assert!(took.as_secs_f64() < 2.0, "took {took:?}");
    }
}
