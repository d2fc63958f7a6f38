//! Templates that grow text faster than MiniJinja's fuel can notice (issue #8): doubling a string
//! with `~`, `+` or a capture block, amplifying filters and methods, huge lists, long literals in
//! loops. Each must fail that rendering quickly with an error naming the limit, and the same
//! template must then render a normal conversation.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use attend::chat::{ChatTemplate, Message, MAX_STRING_BYTES, RENDER_BUDGET_BYTES};

/// A ChatML template that turns hostile when the first message says `boom`.
fn trap(hostile: &str) -> ChatTemplate {
    let src = format!(
        "{{% if messages and messages[0].content == 'boom' %}}{hostile}{{% else %}}{CHATML}{{% endif %}}",
        CHATML = ChatTemplate::fallback_source("llama")
    );
    ChatTemplate::new(&src, "", "<|im_end|>").unwrap_or_else(|e| panic!("{hostile}: {e}"))
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, f64) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let start = std::time::Instant::now();
        let r = f();
        (r, start.elapsed().as_secs_f64())
    }
    #[cfg(target_arch = "wasm32")]
    {
        (f(), 0.0)
    }
}

fn assert_contained(hostile: &str, want: &[&str], secs: f64) {
    let t = trap(hostile);
    let (err, took) = timed(|| t.render(&[Message::user("boom")], true));
    let err = err.expect_err(hostile).to_string();
    assert!(err.starts_with("chat template:"), "{hostile}: {err}");
    for w in want {
        assert!(err.contains(w), "{hostile}: error {err:?} lacks {w:?}");
    }
    assert!(took < secs, "{hostile}: took {took:.1} s to fail");
    assert_eq!(
        t.render(&[Message::user("Hi")], true).unwrap(),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "{hostile}: the template no longer renders a normal conversation"
    );
}

/// `init` followed by `step` `n` times (a `set` inside a loop would not outlive the iteration).
fn chain(init: &str, step: &str, n: usize) -> String {
    format!("{init}{}", step.repeat(n))
}

fn render(src: &str) -> Result<String, String> {
    let t = ChatTemplate::new(src, "", "").map_err(|e| e.to_string())?;
    t.render(&[Message::user("Hi")], true)
        .map_err(|e| e.to_string())
}

#[test]
fn doubling_a_string_is_stopped() {
    let one_value = format!("more than {MAX_STRING_BYTES} bytes, the limit of one template value");
    // 2^60 bytes within a few hundred instructions of fuel.
    let cases: [String; 14] = [
        chain("{% set s = \'x\' %}", "{% set s = s ~ s %}", 60),
        chain("{% set s = \'x\' %}", "{% set s = s + s %}", 60),
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}".into(),
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ d('x', 60) }}".into(),
        chain("{% set s = \'x\' %}", "{% set s = s * 2 %}", 60),
        chain("{% set s = \'x\' %}", "{% set s = s|replace('x', 'xx') %}", 60),
        chain("{% set s = \'x\' %}", "{% set s = s.replace('x', 'xx') %}", 60),
        chain("{% set s = \'x\' %}", "{% set s = [s, s]|join %}", 60),
        chain("{% set s = \'x\' %}", "{% set s = s.join([s, s, s]) %}", 60),
        "{{ 'x'|indent(3000000000) }}".into(),
        "{% set n = 100000 %}{{ ('a\n' * n)|indent(width=1000) }}".into(),
        "{{ '%999999999d'|format(1) }}".into(),
        "{{ '{:>999999999}'.format(1) }}".into(),
        format!("{{% set n = 100000 %}}{{% set l = ['x' * n] %}}{}{{{{ l|join }}}}", "{% set l = l + l %}".repeat(12)),
    ];
    for hostile in cases {
        assert_contained(&hostile, &[&one_value], 10.0);
    }
}

#[test]
fn lists_cannot_grow_without_bound() {
    let cases: [String; 2] = [
        format!(
            "{{% set l = [1] %}}{}{{{{ l|list|length }}}}",
            "{% set l = l + l %}".repeat(60)
        ),
        "{% set n = 1000000000 %}{{ ([1] * n)|list|length }}".into(),
    ];
    for hostile in cases {
        assert_contained(&hostile, &["list of more than 1000000 items"], 10.0);
    }
}

#[test]
fn text_built_in_one_rendering_is_bounded() {
    let budget = format!("more than {RENDER_BUDGET_BYTES} bytes of text in one rendering");
    // Each value stays under the per-value limit; together they are gigabytes (captures and
    // strings kept alive in a list).
    for hostile in [
        "{% set n = 1000000 %}{% set s = 'x' * n %}{% for i in range(100000) %}{% set t %}{{ s }}{% endset %}{% endfor %}",
        "{% set n = 1000000 %}{% set s = 'x' * n %}{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [s ~ i] %}{% endfor %}",
        "{% set n = 1000000 %}{% set s = 'x' * n %}{% for i in range(100000) %}{% set t = s|replace('x', 'y') %}{% endfor %}",
    ] {
        assert_contained(hostile, &[&budget], 20.0);
    }
}

#[test]
fn long_literals_in_loops_get_less_fuel() {
    // A 64 KiB literal printed into a capture a million times would be 64 GB.
    let lit = "y".repeat(64 << 10);
    let hostile = format!(
        "{{% for i in range(1000) %}}{{% for j in range(1000) %}}{{% set t %}}{lit}{{% endset %}}{{% endfor %}}{{% endfor %}}"
    );
    assert_contained(&hostile, &["ran out of fuel"], 20.0);
}

#[test]
fn ordinary_uses_of_the_operators_still_work() {
    // MiniJinja folds operators on literals itself while compiling; on variables the checked
    // operators run. Both must agree.
    let cases = [
        ("'a'", "~", "1", "a1"),
        ("'a'", "~", "[1, 'b']", "a[1, \"b\"]"),
        ("'a'", "+", "'b'", "ab"),
        ("1", "+", "2", "3"),
        ("1.5", "+", "1", "2.5"),
        ("[1]", "+", "[2]", "[1, 2]"),
        ("9223372036854775807", "+", "1", "9223372036854775808"),
        ("'ab'", "*", "3", "ababab"),
        ("3", "*", "'ab'", "ababab"),
        ("2", "*", "3", "6"),
        ("[0]", "*", "3", "[0, 0, 0]"),
    ];
    for (a, op, b, want) in cases {
        let folded = format!("{{{{ {a} {op} {b} }}}}");
        let run = format!("{{% set a = {a} %}}{{% set b = {b} %}}{{{{ a {op} b }}}}");
        assert_eq!(render(&folded).as_deref(), Ok(want), "{folded}");
        assert_eq!(render(&run).as_deref(), Ok(want), "{run}");
    }
    let cases = [
        (
            "{{ 'a-b'|replace('-', '--') }}|{{ 'a-b'.replace('-', '+', 1) }}",
            "a--b|a+b",
        ),
        (
            "{{ ['a', 1]|join(', ') }}|{{ ', '.join(['x', 'y']) }}",
            "a, 1|x, y",
        ),
        ("{{ 'a\nb'|indent(2) }}|{{ '-' * 4 }}", "a\n  b|----"),
        (
            "{% set a = 9223372036854775807 %}{{ a * 2 }}",
            "18446744073709551614",
        ),
        (
            "{{ '%s=%03d'|format('k', 7) }}|{{ '{}-{}'.format(1, 2) }}",
            "k=007|1-2",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render(src).as_deref(), Ok(want), "{src}");
    }
    // Errors of the operators themselves are unchanged.
    for src in [
        "{% set a = 'a' %}{{ a - 1 }}",
        "{% set a = 'a' %}{{ a + 1 }}",
        "{% set a = 'a' %}{{ a * 'b' }}",
    ] {
        let err = render(src).unwrap_err();
        assert!(
            err.contains("unsupported") || err.contains("only be multiplied"),
            "{src}: {err}"
        );
    }
    // Our operator names are reserved.
    let err = render("{{ __attend_concat('a', 'b') }}").unwrap_err();
    assert!(err.contains("reserved"), "{err}");
}

#[test]
fn huge_constants_are_refused_before_compiling() {
    for src in [
        "{{ 'x' * 99999999 }}",
        "{% set s = 'x' * 2 ** 40 %}",
        "{{ ('x' * 9999) * 9999 }}",
        "{{ [1] * 1000000000 }}",
        "{{ 'hello' ~ ('x' * 99999999) ~ messages }}",
    ] {
        let (err, took) = timed(|| ChatTemplate::new(src, "", ""));
        let err = err.map(|_| ()).expect_err(src).to_string();
        assert!(err.contains("could fold to more than"), "{src}: {err}");
        assert!(took < 1.0, "{src}: {took:.1} s");
    }
}

#[test]
fn the_limits_leave_room_for_real_prompts() {
    // A string at the limit is fine: the whole conversation fits in one value.
    let n = MAX_STRING_BYTES;
    let out = render(&format!(
        "{{% set n = {n} %}}{{% set s = 'x' * n %}}{{{{ (s ~ '')|length }}}}"
    ))
    .unwrap();
    assert_eq!(out, n.to_string());
}
