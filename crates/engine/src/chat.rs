//! Chat rendering: the model's own jinja template under limits, or one of
//! llama.cpp's built-in formats when the template is not jinja we can run.

use std::ffi::{c_char, CString};

use augur_template::{ChatMessage, ChatTemplate, Limits, RenderOptions};
use llama_cpp_sys_2 as sys;

use crate::error::{EngineError, Result};

pub enum ChatRenderer {
    /// The model's template, run by minijinja with hard limits.
    Jinja { template: Box<ChatTemplate>, bos: String, eos: String },
    /// llama.cpp's fixed formatter for a template it recognises (no jinja
    /// engine involved, so it is bounded by construction).
    Builtin(String),
}

impl std::fmt::Debug for ChatRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatRenderer::Jinja { .. } => f.write_str("jinja"),
            ChatRenderer::Builtin(_) => f.write_str("llama.cpp built-in"),
        }
    }
}

impl ChatRenderer {
    /// Compile and dry-run the model's template. A template over a limit is an
    /// error at load time; one that minijinja cannot parse falls back to a
    /// built-in format only if llama.cpp recognises it.
    pub fn for_model(source: Option<&str>, arch: &str, bos: String, eos: String) -> Result<ChatRenderer> {
        let Some(source) = source else {
            return Ok(ChatRenderer::Builtin(builtin_for_arch(arch).into()));
        };
        match ChatTemplate::compile(source, Limits::default()).and_then(|t| t.dry_run().map(|()| t)) {
            Ok(template) => Ok(ChatRenderer::Jinja { template: Box::new(template), bos, eos }),
            Err(e @ augur_template::TemplateError::OverLimit { .. }) => Err(e.into()),
            Err(e) => {
                let builtin = ChatRenderer::Builtin(source.to_string());
                let probe = [ChatMessage::new("user", "hi")];
                builtin.render(&probe, true).map_err(|_| EngineError::Template(e))?;
                Ok(builtin)
            }
        }
    }

    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// Render with tool definitions (OpenAI shape) passed to the template as
    /// `tools`. Built-in formats have no tool support and ignore them; see
    /// [`ChatRenderer::knows_tools`].
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        match self {
            ChatRenderer::Jinja { template, bos, eos } => {
                let opts = RenderOptions {
                    add_generation_prompt,
                    bos_token: bos.clone(),
                    eos_token: eos.clone(),
                    tools: tools.cloned(),
                    ..RenderOptions::default()
                };
                Ok(template.render(messages, &opts)?)
            }
            ChatRenderer::Builtin(tmpl) => render_builtin(tmpl, messages, add_generation_prompt),
        }
    }

    /// Whether the template renders tool definitions itself. A jinja
    /// template that never reads `tools` would silently drop them, so the
    /// caller must describe the tools in the prompt instead.
    pub fn knows_tools(&self) -> bool {
        match self {
            ChatRenderer::Jinja { template, .. } => template.source().contains("tools"),
            ChatRenderer::Builtin(_) => false,
        }
    }
}

/// A model without a template gets its family's format, else ChatML (as
/// llama-server does).
fn builtin_for_arch(arch: &str) -> &'static str {
    if arch.starts_with("gemma") {
        "gemma"
    } else {
        "chatml"
    }
}

fn render_builtin(tmpl: &str, messages: &[ChatMessage], add_ass: bool) -> Result<String> {
    let tmpl = CString::new(tmpl).map_err(|_| EngineError::Nul)?;
    let owned: Vec<(CString, CString)> = messages
        .iter()
        .map(|m| Ok((CString::new(m.role.as_str())?, CString::new(m.content.as_str())?)))
        .collect::<std::result::Result<_, std::ffi::NulError>>()
        .map_err(|_| EngineError::Nul)?;
    let chat: Vec<sys::llama_chat_message> =
        owned.iter().map(|(r, c)| sys::llama_chat_message { role: r.as_ptr(), content: c.as_ptr() }).collect();
    let total: usize = messages.iter().map(|m| m.role.len() + m.content.len()).sum();
    let mut buf = vec![0u8; total * 2 + 256];
    for _ in 0..2 {
        let len = i32::try_from(buf.len()).map_err(|_| EngineError::TextTooLong(buf.len()))?;
        // SAFETY: every pointer in `chat` points into `owned`, alive for the
        // call; buf is writable for `len` bytes.
        let n = unsafe {
            sys::llama_chat_apply_template(
                tmpl.as_ptr(),
                chat.as_ptr(),
                chat.len(),
                add_ass,
                buf.as_mut_ptr().cast::<c_char>(),
                len,
            )
        };
        if n < 0 {
            return Err(EngineError::NoTemplate);
        }
        let n = n as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        buf.resize(n, 0);
    }
    Err(EngineError::NoTemplate)
}
