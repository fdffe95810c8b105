//! Bounded chat-template rendering.
//!
//! Chat templates (`tokenizer.chat_template` in GGUF files) are jinja
//! programs shipped inside untrusted model files. This crate renders them
//! with minijinja, configured like Hugging Face transformers' environment
//! (`trim_blocks`, `lstrip_blocks`, `raise_exception`, `tojson`,
//! `strftime_now`, Python string/dict methods), under hard [`Limits`].
//!
//! # What is guaranteed
//!
//! Any template, however hostile, yields `Ok` or a [`TemplateError`] in
//! bounded time and memory; it cannot crash, hang or exhaust memory:
//!
//! * **Stack**: a constant-stack pre-scan rejects sources nested deeper than
//!   `max_nesting` (blocks plus brackets) or with more than
//!   `max_expression_tokens` in one tag, before minijinja's recursive parser,
//!   code generator and tree drop run. Macro and recursive-loop calls are
//!   capped by `max_recursion`. Compiling and rendering run on a dedicated
//!   thread with a 16 MiB stack, so the caller's stack size does not matter,
//!   and a panic inside the engine becomes an error.
//! * **Time**: every executed instruction costs `fuel`; every loop iteration
//!   and value-producing operation also checks the wall-clock `timeout`.
//! * **Memory**: the compiled bytecode is rewritten (minijinja's
//!   `unstable_machinery`) so that `~`, `+` and `*` go through checked
//!   functions that refuse, *before allocating*, any string over
//!   `max_string_bytes` or list over `max_list_items`. The builtins that can
//!   grow their input (`join`, `replace`, `format`, `indent`, `tojson`,
//!   `string`, `pprint`, `list`, `sort`, `unique`, `map`, `groupby`, `batch`,
//!   `slice`, `split`, `lines`, and the Python methods `str.join`,
//!   `replace`, `center`/`ljust`/`rjust`/`zfill`, `format`, `expandtabs`,
//!   `split`/`rsplit`/`splitlines`) check their result size first. Every
//!   other produced value is measured right after it is made and counted
//!   against the cumulative `max_alloc_bytes` budget. Constant folding at
//!   compile time is bounded by a static estimate. Output, raw text
//!   included, is counted as it is written and stops at `max_output_bytes`.
//!
//! # What is not guaranteed
//!
//! * Overshoot: a value measured after the fact may exceed the budget once,
//!   by at most a small multiple of `max_string_bytes` (e.g. `|escape`);
//!   lists are charged per item, not per byte of what they reference.
//! * The budgets are cumulative, so a legitimate but quadratic template on a
//!   huge conversation can be refused; raise `max_alloc_bytes` if so.
//! * Rendering re-parses the template each time (about 0.1 ms for a real
//!   template in release builds), because the rewritten bytecode borrows the
//!   source and cannot be stored next to it without `unsafe`.
//! * Fidelity with Python jinja2 (as used by Hugging Face transformers) is
//!   tested byte for byte on templates shaped like Qwen2.5, Llama 3, Gemma 3,
//!   Mistral and DeepSeek ones (see `tests/jinja_fidelity.rs` and
//!   [`reference`](mod@reference)). Known differences remain: `str()` of lists and maps
//!   uses minijinja's spelling, constants folded at compile time
//!   (`{{ 'a' ~ true }}`) use minijinja's `true`/`none`, floats in `tojson`
//!   use Rust's shortest form, and `strftime_now` uses UTC and supports
//!   `%Y %y %m %d %-d %B %b %A %a %H %M %S %%`.

#![forbid(unsafe_code)]

mod error;
mod filters;
mod fold;
mod guard;
mod hf;
mod limits;
pub mod reference;
mod rewrite;
mod scan;

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::machinery::{self, CodeGenerator, Instructions, Vm, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

pub use error::TemplateError;
pub use limits::Limits;

use guard::{Budget, BUDGET_VAR};

const TEMPLATE_NAME: &str = "chat_template";

/// One chat message as chat templates see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// The message text.
    pub content: String,
    /// Optional speaker name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by an assistant message (OpenAI shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message with just a role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage { role: role.into(), content: content.into(), ..ChatMessage::default() }
    }
}

/// Variables passed to the template besides `messages`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderOptions {
    /// Append the opening of an assistant turn.
    pub add_generation_prompt: bool,
    /// The model's BOS token text.
    pub bos_token: String,
    /// The model's EOS token text.
    pub eos_token: String,
    /// Tool definitions (OpenAI shape), exposed as `tools` (none if absent).
    pub tools: Option<serde_json::Value>,
    /// Any further variables (e.g. `documents`, `enable_thinking`); they
    /// never override the ones above.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl RenderOptions {
    /// The template context as JSON, as Hugging Face builds it.
    pub fn context(&self, messages: &[ChatMessage]) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value as J;
        let mut ctx = self.extra.clone();
        let messages = messages.iter().map(message_json).collect();
        ctx.insert("messages".into(), J::Array(messages));
        ctx.insert("add_generation_prompt".into(), J::Bool(self.add_generation_prompt));
        ctx.insert("bos_token".into(), J::String(self.bos_token.clone()));
        ctx.insert("eos_token".into(), J::String(self.eos_token.clone()));
        // transformers always passes `tools` and `documents`, as None when
        // absent, so `tools is defined` holds there and must hold here.
        ctx.insert("tools".into(), self.tools.clone().unwrap_or(J::Null));
        ctx.entry("documents").or_insert(J::Null);
        ctx
    }
}

fn message_json(message: &ChatMessage) -> serde_json::Value {
    serde_json::to_value(message).unwrap_or(serde_json::Value::Null)
}

/// A validated chat template, ready to render.
pub struct ChatTemplate {
    source: String,
    limits: Limits,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("source_bytes", &self.source.len()).field("limits", &self.limits).finish()
    }
}

impl ChatTemplate {
    /// Checks `source` against the static limits and compiles it.
    pub fn compile(source: &str, limits: Limits) -> Result<Self, TemplateError> {
        on_render_stack(|| Self::compile_here(source, limits))?
    }

    fn compile_here(source: &str, limits: Limits) -> Result<Self, TemplateError> {
        if source.len() > limits.max_source_bytes {
            return Err(TemplateError::over("max_source_bytes", source.len(), limits.max_source_bytes));
        }
        scan::check_structure(source, &limits)?;
        let template = ChatTemplate { source: source.to_owned(), limits, env: build_env(&limits) };
        template.guarded_code()?;
        Ok(template)
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The limits this template is held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Renders a conversation.
    pub fn render(&self, messages: &[ChatMessage], opts: &RenderOptions) -> Result<String, TemplateError> {
        let ctx = Value::from_serialize(opts.context(messages));
        on_render_stack(|| self.render_value(ctx))?
    }

    /// Renders sample conversations so a broken template fails at load time.
    ///
    /// A template may legitimately refuse system messages via
    /// `raise_exception`; then the conversation without one must render.
    pub fn dry_run(&self) -> Result<(), TemplateError> {
        for add_generation_prompt in [false, true] {
            let opts = RenderOptions {
                add_generation_prompt,
                bos_token: "<s>".into(),
                eos_token: "</s>".into(),
                ..RenderOptions::default()
            };
            let full = sample_conversation();
            match self.render(&full, &opts) {
                Err(TemplateError::Raised(_)) => self.render(&full[1..], &opts)?,
                other => other?,
            };
        }
        Ok(())
    }

    fn guarded_code(&self) -> Result<GuardedCode<'_>, TemplateError> {
        let ws = WhitespaceConfig { keep_trailing_newline: false, lstrip_blocks: true, trim_blocks: true };
        // A unit struct only while no crate enables minijinja's `custom_syntax`.
        #[allow(clippy::default_constructed_unit_structs)]
        let syntax = SyntaxConfig::default();
        let ast = machinery::parse(&self.source, TEMPLATE_NAME, syntax, ws)
            .map_err(|e| TemplateError::Syntax(e.to_string()))?;
        fold::check_folding(&ast, &self.limits)?;
        let mut codegen = CodeGenerator::new(TEMPLATE_NAME, &self.source);
        codegen.compile_stmt(&ast);
        let (root, blocks) = codegen.finish();
        let root = rewrite::guard_instructions(&root)?;
        let blocks = blocks
            .iter()
            .map(|(name, code)| Ok((*name, rewrite::guard_instructions(code)?)))
            .collect::<Result<_, TemplateError>>()?;
        Ok(GuardedCode { root, blocks })
    }

    fn render_value(&self, ctx: Value) -> Result<String, TemplateError> {
        let code = self.guarded_code()?;
        let budget = Arc::new(Budget::new(self.limits));
        let root = with_budget(ctx, &budget);
        let mut rendered = String::new();
        let mut out = machinery::make_string_output(&mut rendered);
        let result = Vm::new(&self.env).eval(&code.root, root, &code.blocks, &mut out, AutoEscape::None);
        match result {
            Ok(_) => Ok(rendered),
            Err(err) => Err(budget.take_tripped().unwrap_or_else(|| map_error(&err, &self.limits))),
        }
    }
}

/// Stack for parsing and rendering: minijinja recurses per nesting level
/// (bounded by the pre-scan and `max_recursion`), and this is far more than
/// those bounds need even in debug builds. Only touched pages are committed.
const RENDER_STACK_BYTES: usize = 16 * 1024 * 1024;

/// Runs `work` on a thread with a known, large stack so safety does not
/// depend on the caller's stack size; a panic inside the engine becomes an
/// error instead of unwinding into the caller.
fn on_render_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, TemplateError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("augur-template".into())
            .stack_size(RENDER_STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(|e| TemplateError::Render(format!("cannot start the render thread: {e}")))?;
        handle.join().map_err(|_| TemplateError::Render("the template engine panicked".into()))
    })
}

struct GuardedCode<'s> {
    root: Instructions<'s>,
    blocks: BTreeMap<&'s str, Instructions<'s>>,
}

fn with_budget(ctx: Value, budget: &Arc<Budget>) -> Value {
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    if let Ok(keys) = ctx.try_iter() {
        for key in keys {
            if let (Some(name), Ok(value)) = (key.as_str(), ctx.get_item(&key)) {
                map.insert(name.to_owned(), value);
            }
        }
    }
    map.insert(BUDGET_VAR.to_owned(), Value::from_dyn_object(budget.clone()));
    Value::from(map)
}

fn map_error(err: &minijinja::Error, limits: &Limits) -> TemplateError {
    let fuel = usize::try_from(limits.fuel).unwrap_or(usize::MAX);
    match err.kind() {
        ErrorKind::SyntaxError => TemplateError::Syntax(err.to_string()),
        ErrorKind::OutOfFuel => TemplateError::over("fuel", fuel.saturating_add(1), fuel),
        _ if err.to_string().contains("recursion limit") => {
            TemplateError::over("max_recursion", limits.max_recursion + 1, limits.max_recursion)
        }
        _ => TemplateError::Render(render_message(err)),
    }
}

fn render_message(err: &minijinja::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn build_env(limits: &Limits) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.max_recursion);
    env.set_debug(false);
    guard::install(&mut env);
    filters::install(&mut env);
    hf::install(&mut env);
    env
}

fn sample_conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", "You are a helpful assistant."),
        ChatMessage::new("user", "Hello!"),
        ChatMessage::new("assistant", "Hi, how can I help?"),
        ChatMessage::new("user", "What is 2 + 2?"),
    ]
}
