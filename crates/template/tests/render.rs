//! Ordinary rendering behaviour.

use augur_template::{ChatMessage, ChatTemplate, Limits, RenderOptions, TemplateError};

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello."),
        ChatMessage::new("user", "Bye"),
    ]
}

fn render(source: &str, add_generation_prompt: bool) -> Result<String, TemplateError> {
    let opts = RenderOptions { add_generation_prompt, ..RenderOptions::default() };
    ChatTemplate::compile(source, Limits::default())?.render(&conversation(), &opts)
}

#[test]
fn chatml_renders_turns_exactly() {
    let expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
                    <|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n";
    assert_eq!(render(CHATML, false).unwrap(), expected);
    let with_prompt = render(CHATML, true).unwrap();
    assert_eq!(with_prompt, format!("{expected}<|im_start|>assistant\n"));
}

#[test]
fn raise_exception_surfaces_message() {
    let src = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}";
    let err = render(src, false).unwrap_err();
    assert_eq!(err, TemplateError::Raised("System role not supported".into()));
    assert!(err.to_string().contains("System role not supported"));
}

#[test]
fn syntax_errors_are_reported_at_compile_time() {
    let err = ChatTemplate::compile("{% if %}", Limits::default()).unwrap_err();
    assert!(matches!(err, TemplateError::Syntax(_)), "{err:?}");
}

#[test]
fn undefined_values_are_lenient_like_jinja2() {
    let src = "{{ nothing }}|{% if messages[0].missing %}yes{% else %}no{% endif %}|{{ messages[0].name is defined }}";
    assert_eq!(render(src, false).unwrap(), "|no|False");
}

#[test]
fn python_methods_and_hf_extras_work() {
    let src = "{{ '  x '.strip() }}|{{ 'abc'.startswith('a') }}|{{ {'a': [1, 'é']}|tojson }}|{{ {'a': 1}|tojson(indent=2) }}|{{ strftime_now('%Y')|length }}";
    assert_eq!(render(src, false).unwrap(), "x|True|{\"a\": [1, \"é\"]}|{\n  \"a\": 1\n}|4");
}

#[test]
fn loops_namespaces_and_macros_work() {
    let src = "{% set ns = namespace(n=0) %}{% macro m(x) %}[{{ x }}]{% endmacro %}\
               {% for msg in messages %}{% set ns.n = ns.n + 1 %}{% if loop.first %}F{% endif %}\
               {{ m(msg.role) }}{% if loop.last %}L{{ loop.length }}{% endif %}{% endfor %}{{ ns.n }}";
    assert_eq!(render(src, false).unwrap(), "F[system][user][assistant][user]L44");
}

#[test]
fn dry_run_accepts_good_and_system_refusing_templates() {
    let chatml = ChatTemplate::compile(CHATML, Limits::default()).unwrap();
    chatml.dry_run().unwrap();
    let refusing = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}{{ m.content }}{% endfor %}";
    ChatTemplate::compile(refusing, Limits::default()).unwrap().dry_run().unwrap();
}

#[test]
fn dry_run_reports_broken_templates() {
    let broken = ChatTemplate::compile("{{ messages|bogus_filter }}", Limits::default());
    let err = broken.and_then(|t| t.dry_run()).unwrap_err();
    assert!(matches!(err, TemplateError::Render(_)), "{err:?}");
}

#[test]
fn tools_is_defined_as_none_when_absent_like_transformers() {
    let src = "{{ tools is defined }} {{ tools is none }} {{ documents is none }}";
    assert_eq!(render(src, false).unwrap(), "True True True");
}

#[test]
fn templates_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ChatTemplate>();
}

#[test]
fn rendering_a_real_template_is_fast() {
    let source = include_str!("fixtures/qwen2.5.jinja");
    let template = ChatTemplate::compile(source, Limits::default()).unwrap();
    let opts = RenderOptions::default();
    let messages = conversation();
    let started = std::time::Instant::now();
    for _ in 0..100 {
        template.render(&messages, &opts).unwrap();
    }
    let per_render = started.elapsed() / 100;
    eprintln!("qwen2.5 render: {per_render:?}");
    // Generous: debug builds on a loaded machine; release is far faster.
    assert!(per_render < std::time::Duration::from_millis(50), "{per_render:?}");
}
