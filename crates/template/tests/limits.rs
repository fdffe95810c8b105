//! Hostile templates must fail fast with an error: never crash, hang or OOM.
//!
//! Each case runs in its own thread and must answer within a deadline; a
//! stack overflow or allocation failure would abort this test binary.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use augur_template::{ChatMessage, ChatTemplate, Limits, RenderOptions, TemplateError};

const DEADLINE: Duration = Duration::from_secs(10);

/// Defaults, except that big sources are allowed so the other checks run.
fn limits() -> Limits {
    Limits { max_source_bytes: 16 * 1024 * 1024, ..Limits::default() }
}

fn compile_and_render(source: &str) -> Result<String, TemplateError> {
    let messages = vec![ChatMessage::new("user", "hi")];
    let opts = RenderOptions::default();
    ChatTemplate::compile(source, limits())?.render(&messages, &opts)
}

/// Runs `source` on a thread with `stack` bytes of stack and returns its error.
fn hostile_on_stack(source: String, stack: usize) -> TemplateError {
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    thread::Builder::new()
        .stack_size(stack)
        .spawn(move || {
            let _ = tx.send(compile_and_render(&source));
        })
        .expect("spawn");
    let result = rx.recv_timeout(DEADLINE).unwrap_or_else(|_| panic!("template did not finish within {DEADLINE:?}"));
    assert!(started.elapsed() < DEADLINE);
    match result {
        Ok(out) => panic!("hostile template rendered {} bytes", out.len()),
        Err(err) => err,
    }
}

fn hostile(source: String) -> TemplateError {
    hostile_on_stack(source, 2 * 1024 * 1024)
}

fn assert_limit(err: &TemplateError, name: &str) {
    match err {
        TemplateError::OverLimit { limit, .. } if *limit == name => {}
        other => panic!("expected {name} limit, got {other:?}"),
    }
    assert!(err.to_string().contains(name));
}

const SMALL_STACK: usize = 256 * 1024;

#[test]
fn deep_block_nesting_is_refused_before_parsing() {
    let n = 10_000;
    let ifs = format!("{}x{}", "{% if true %}".repeat(n), "{% endif %}".repeat(n));
    assert_limit(&hostile_on_stack(ifs, SMALL_STACK), "max_nesting");
    let fors = format!("{}x{}", "{% for a in [1] %}".repeat(n), "{% endfor %}".repeat(n));
    assert_limit(&hostile_on_stack(fors, SMALL_STACK), "max_nesting");
}

#[test]
fn deep_expression_nesting_is_refused_before_parsing() {
    let n = 10_000;
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
    assert_limit(&hostile_on_stack(parens, SMALL_STACK), "max_nesting");
    let lists = format!("{{{{ {}1{} }}}}", "[".repeat(n), "]".repeat(n));
    assert_limit(&hostile_on_stack(lists, SMALL_STACK), "max_nesting");
    let unclosed = format!("{{{{ {}", "(".repeat(n));
    assert_limit(&hostile_on_stack(unclosed, SMALL_STACK), "max_nesting");
    let nots = format!("{{{{ {}x }}}}", "not ".repeat(n));
    assert_limit(&hostile_on_stack(nots, SMALL_STACK), "max_expression_tokens");
    let chain = format!("{{{{ 1{} }}}}", "+1".repeat(n));
    assert_limit(&hostile_on_stack(chain, SMALL_STACK), "max_expression_tokens");
    let attrs = format!("{{{{ x{} }}}}", ".a".repeat(n));
    assert_limit(&hostile_on_stack(attrs, SMALL_STACK), "max_expression_tokens");
}

#[test]
fn nesting_at_the_limits_still_compiles_on_a_small_stack() {
    let depth = Limits::default().max_nesting / 2;
    let src = format!(
        "{}{{{{ {}1{} }}}}{}",
        "{% if true %}".repeat(depth),
        "(".repeat(depth),
        ")".repeat(depth),
        "{% endif %}".repeat(depth)
    );
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let _ = tx.send(compile_and_render(&src));
        })
        .expect("spawn");
    assert_eq!(rx.recv_timeout(DEADLINE).expect("finished").unwrap(), "1");
}

#[test]
fn longest_allowed_expressions_still_compile() {
    // Operator chains build syntax trees as deep as they are long.
    let ops = Limits::default().max_expression_tokens / 2 - 4;
    let chain = format!("{{{{ x{} }}}}", " ~ 1".repeat(ops));
    let attrs = format!("{{{{ x{} }}}}", ".a".repeat(ops));
    for src in [chain, attrs] {
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .stack_size(SMALL_STACK)
            .spawn(move || {
                let _ = tx.send(compile_and_render(&src));
            })
            .expect("spawn");
        // `x.a.a...` on an undefined `x` is a render error, as in jinja2;
        // what matters is that the template was accepted and ran.
        let rendered = rx.recv_timeout(DEADLINE).expect("finished");
        assert!(matches!(rendered, Ok(_) | Err(TemplateError::Render(_))), "{rendered:?}");
    }
}

#[test]
fn runaway_loops_run_out_of_fuel_or_range() {
    let huge_range = "{% for i in range(10**9) %}x{% endfor %}".to_owned();
    assert!(matches!(hostile(huge_range), TemplateError::Render(_)));
    let nested = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let err = hostile(nested.to_owned());
    // Which trips first depends on machine speed (and debug vs release).
    assert!(matches!(err, TemplateError::OverLimit { limit: "fuel" | "timeout (ms)", .. }), "{err:?}");
    let slow = Limits { fuel: 100_000, timeout: Duration::from_secs(60), ..Limits::default() };
    let t = ChatTemplate::compile(nested, slow).unwrap();
    assert_limit(&t.render(&[], &RenderOptions::default()).unwrap_err(), "fuel");
    let fast = Limits { timeout: Duration::from_millis(50), ..Limits::default() };
    let t = ChatTemplate::compile(nested, fast).unwrap();
    assert_limit(&t.render(&[], &RenderOptions::default()).unwrap_err(), "timeout (ms)");
}

#[test]
fn recursion_is_capped() {
    let mac = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
    assert_limit(&hostile(mac.to_owned()), "max_recursion");
    let rec = "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}";
    assert_limit(&hostile(rec.to_owned()), "max_recursion");
}

#[test]
fn source_size_is_capped() {
    let max = Limits::default().max_source_bytes;
    let err = ChatTemplate::compile(&"x".repeat(max + 1), Limits::default()).unwrap_err();
    assert_limit(&err, "max_source_bytes");
    assert!(ChatTemplate::compile(&"x".repeat(max), Limits::default()).is_ok());
}

#[test]
fn output_size_is_capped() {
    let emitted = "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}";
    assert_limit(&hostile(emitted.to_owned()), "max_output_bytes");
    let raw = format!("{{% for i in range(100000) %}}{}{{% endfor %}}", "y".repeat(2000));
    assert_limit(&hostile(raw), "max_output_bytes");
}

#[test]
fn output_limit_is_configurable() {
    let limits = Limits { max_output_bytes: 10, ..Limits::default() };
    let t = ChatTemplate::compile("{{ 'x' * 11 }}", limits).unwrap();
    let err = t.render(&[], &RenderOptions::default()).unwrap_err();
    assert_limit(&err, "max_output_bytes");
    let t = ChatTemplate::compile("0123456789", limits).unwrap();
    assert_eq!(t.render(&[], &RenderOptions::default()).unwrap(), "0123456789");
}
