//! A loaded model: weights, vocabulary, metadata and chat template.

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use augur_gguf::{GgufFile, MetaOverride, OverrideValue};
use augur_sampling::Token;
use llama_cpp_sys_2 as sys;

use crate::backend::{self, LoadReport};
use crate::chat::ChatRenderer;
use crate::error::{EngineError, Result};

/// How a model is loaded.
#[derive(Debug, Clone)]
pub struct ModelParams {
    /// Map the file instead of reading it into anonymous memory.
    pub mmap: bool,
    /// Let llama.cpp repack weights into its CPU-specific layouts
    /// (`use_extra_bufts`). Faster decode, but the repacked
    /// kernels are not batch-invariant, which breaks lossless speculation.
    pub repack: bool,
    /// Metadata overrides, validated with the model before llama.cpp sees them.
    pub overrides: Vec<MetaOverride>,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self { mmap: true, repack: true, overrides: Vec::new() }
    }
}

/// What `augur models` and the runtime want to know without asking llama.cpp.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub arch: String,
    pub name: Option<String>,
    pub quant: String,
    pub params: u64,
    pub file_size: u64,
    pub n_vocab: i32,
    pub n_ctx_train: i32,
    pub n_embd: i32,
    pub n_layer: i32,
    /// Experts per MoE layer as llama.cpp loaded them (0 for a dense model).
    /// Read from llama.cpp's load log; `None` if it did not report it.
    pub n_expert: Option<u32>,
    /// Experts used per token as llama.cpp loaded them, i.e. after any
    /// `<arch>.expert_used_count` override (layer 0's value when the file
    /// sets it per layer). `None` if llama.cpp did not report it.
    pub n_expert_used: Option<u32>,
    pub description: String,
}

/// A llama.cpp model. Immutable after load, so it is shared between threads;
/// each context that uses it is owned by one thread.
pub struct Model {
    ptr: NonNull<sys::llama_model>,
    vocab: NonNull<sys::llama_vocab>,
    info: ModelInfo,
    pieces: Pieces,
    eog: Vec<bool>,
    bos: Option<Token>,
    eos: Option<Token>,
    add_bos: bool,
    chat: ChatRenderer,
}

// SAFETY: llama.cpp treats a loaded model as read-only; several contexts on
// several threads may use one model at once (llama-server does exactly this).
unsafe impl Send for Model {}
// SAFETY: see above; every method here takes &self and only reads.
unsafe impl Sync for Model {}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the pointer came from llama_model_load_from_file and is freed
        // once; contexts hold an Arc<Model>, so none outlives it.
        unsafe { sys::llama_model_free(self.ptr.as_ptr()) }
    }
}

/// Detokenisation table: every token's bytes, computed once at load so the
/// per-token loop does no FFI call and no allocation.
struct Pieces {
    bytes: Vec<u8>,
    offsets: Vec<u32>,
}

impl Pieces {
    fn get(&self, token: Token) -> &[u8] {
        let Ok(i) = usize::try_from(token) else {
            return &[];
        };
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => self.bytes.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

impl Model {
    /// Validate `path` in Rust (container, then model metadata with the
    /// overrides applied), then load it with llama.cpp.
    pub fn load(path: &Path, params: &ModelParams) -> Result<Model> {
        let gguf = check_file(path, &params.overrides)?;
        backend::init();
        let overrides = kv_overrides(&params.overrides)?;
        let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| EngineError::Nul)?;
        // SAFETY: plain value constructor.
        let mut mp = unsafe { sys::llama_model_default_params() };
        mp.n_gpu_layers = 0;
        mp.load_mode = if params.mmap { sys::LLAMA_LOAD_MODE_MMAP } else { sys::LLAMA_LOAD_MODE_NONE };
        mp.use_extra_bufts = params.repack;
        mp.kv_overrides = if overrides.len() > 1 { overrides.as_ptr() } else { std::ptr::null() };
        backend::clear_recent();
        // SAFETY: c_path is NUL-terminated; `overrides` is terminated by an
        // entry with an empty key and outlives the call.
        let (raw, report) = backend::capture_load(|| unsafe { sys::llama_model_load_from_file(c_path.as_ptr(), mp) });
        let ptr = NonNull::new(raw)
            .ok_or_else(|| EngineError::Load { path: path.to_path_buf(), detail: backend::recent_errors() })?;
        let model = Self::from_raw(ptr, path, &gguf, report)?;
        // Checked on the built Model, so a refusal frees it through Drop.
        check_expert_override(&model.info, &params.overrides)?;
        Ok(model)
    }

    fn from_raw(ptr: NonNull<sys::llama_model>, path: &Path, gguf: &GgufFile, report: LoadReport) -> Result<Model> {
        // SAFETY: ptr is a live model; the vocab it returns lives as long as it.
        let vocab = unsafe { sys::llama_model_get_vocab(ptr.as_ptr()) };
        let vocab = NonNull::new(vocab.cast_mut())
            .ok_or_else(|| EngineError::Load { path: path.to_path_buf(), detail: "model has no vocabulary".into() })?;
        // SAFETY: both pointers are live for these read-only queries.
        let (n_vocab, n_ctx_train, n_embd, n_layer, add_bos, bos, eos) = unsafe {
            let v = vocab.as_ptr();
            let m = ptr.as_ptr();
            (
                sys::llama_vocab_n_tokens(v),
                sys::llama_model_n_ctx_train(m),
                sys::llama_model_n_embd(m),
                sys::llama_model_n_layer(m),
                sys::llama_vocab_get_add_bos(v),
                sys::llama_vocab_bos(v),
                sys::llama_vocab_eos(v),
            )
        };
        let mut model = Model {
            ptr,
            vocab,
            info: ModelInfo {
                path: path.to_path_buf(),
                arch: gguf.arch().unwrap_or("unknown").to_string(),
                name: gguf.name().map(str::to_string),
                quant: gguf.quant_label(),
                params: gguf.param_count(),
                file_size: gguf.file_size,
                n_vocab,
                n_ctx_train,
                n_embd,
                n_layer,
                n_expert: report.n_expert,
                n_expert_used: report.n_expert_used,
                description: String::new(),
            },
            pieces: Pieces { bytes: Vec::new(), offsets: vec![0] },
            eog: Vec::new(),
            bos: (bos >= 0 && bos < n_vocab).then_some(bos),
            eos: (eos >= 0 && eos < n_vocab).then_some(eos),
            add_bos,
            chat: ChatRenderer::Builtin("chatml".into()),
        };
        model.info.description = model.describe();
        model.build_tables();
        let bos_text = model.token_text(bos);
        let eos_text = model.token_text(eos);
        model.chat = ChatRenderer::for_model(gguf.chat_template(), gguf.arch().unwrap_or(""), bos_text, eos_text)?;
        Ok(model)
    }

    fn describe(&self) -> String {
        let mut buf = [0u8; 256];
        // SAFETY: buf is writable for its length; llama.cpp NUL-terminates
        // within it (snprintf semantics).
        let n = unsafe { sys::llama_model_desc(self.ptr.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        let n = usize::try_from(n).unwrap_or(0).min(buf.len() - 1);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    fn build_tables(&mut self) {
        let n = usize::try_from(self.info.n_vocab).unwrap_or(0);
        let mut bytes = Vec::with_capacity(n * 6);
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0u32);
        let mut eog = Vec::with_capacity(n);
        let mut buf = vec![0u8; 256];
        for t in 0..self.info.n_vocab {
            let piece = self.raw_piece(t, &mut buf);
            bytes.extend_from_slice(piece);
            offsets.push(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
            // SAFETY: t is inside the vocabulary.
            eog.push(unsafe { sys::llama_vocab_is_eog(self.vocab.as_ptr(), t) });
        }
        self.pieces = Pieces { bytes, offsets };
        self.eog = eog;
    }

    fn raw_piece<'b>(&self, token: Token, buf: &'b mut Vec<u8>) -> &'b [u8] {
        loop {
            let cap = i32::try_from(buf.len()).unwrap_or(i32::MAX);
            // SAFETY: buf is writable for `cap` bytes; token is in the vocab.
            let n = unsafe {
                sys::llama_token_to_piece(self.vocab.as_ptr(), token, buf.as_mut_ptr().cast::<c_char>(), cap, 0, false)
            };
            if n >= 0 {
                return &buf[..(n as usize).min(buf.len())];
            }
            let need = n.unsigned_abs() as usize;
            if need <= buf.len() || need > 1 << 20 {
                return &[];
            }
            buf.resize(need, 0);
        }
    }

    /// The token's text as stored in the vocabulary (special tokens included).
    pub fn token_text(&self, token: Token) -> String {
        if token < 0 || token >= self.info.n_vocab {
            return String::new();
        }
        // SAFETY: token is inside the vocabulary; the returned string is owned
        // by the vocab and NUL-terminated.
        let p = unsafe { sys::llama_vocab_get_text(self.vocab.as_ptr(), token) };
        if p.is_null() {
            return String::new();
        }
        // SAFETY: non-null, NUL-terminated, lives as long as the model.
        unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn n_vocab(&self) -> i32 {
        self.info.n_vocab
    }

    /// The bytes a token detokenises to; control tokens give nothing.
    pub fn piece(&self, token: Token) -> &[u8] {
        self.pieces.get(token)
    }

    /// End-of-generation token (EOS, EOT, `<|im_end|>`...).
    pub fn is_eog(&self, token: Token) -> bool {
        usize::try_from(token).ok().and_then(|i| self.eog.get(i)).copied().unwrap_or(false)
    }

    pub fn contains(&self, token: Token) -> bool {
        token >= 0 && token < self.info.n_vocab
    }

    /// Tokenise `text`. `add_bos` follows the model's own setting when true;
    /// `parse_special` turns `<|im_start|>` and friends into their tokens.
    pub fn tokenize(&self, text: &str, add_bos: bool, parse_special: bool) -> Result<Vec<Token>> {
        let len = i32::try_from(text.len()).map_err(|_| EngineError::TextTooLong(text.len()))?;
        let add = add_bos && self.add_bos;
        let mut out: Vec<Token> = vec![0; text.len() + 2];
        for _ in 0..2 {
            let cap = i32::try_from(out.len()).map_err(|_| EngineError::TextTooLong(text.len()))?;
            // SAFETY: text is valid for `len` bytes (no NUL terminator needed);
            // out is writable for `cap` tokens.
            let n = unsafe {
                sys::llama_tokenize(
                    self.vocab.as_ptr(),
                    text.as_ptr().cast(),
                    len,
                    out.as_mut_ptr(),
                    cap,
                    add,
                    parse_special,
                )
            };
            if n >= 0 {
                out.truncate(n as usize);
                return Ok(out);
            }
            if n == i32::MIN {
                return Err(EngineError::TextTooLong(text.len()));
            }
            out.resize(n.unsigned_abs() as usize, 0);
        }
        Err(EngineError::Tokenize(-1))
    }

    /// Bytes of a whole token sequence (lossless, may be invalid UTF-8 at the edges).
    pub fn detokenize_bytes(&self, tokens: &[Token]) -> Vec<u8> {
        let mut out = Vec::new();
        for &t in tokens {
            out.extend_from_slice(self.piece(t));
        }
        out
    }

    pub fn detokenize(&self, tokens: &[Token]) -> String {
        String::from_utf8_lossy(&self.detokenize_bytes(tokens)).into_owned()
    }

    pub fn bos(&self) -> Option<Token> {
        self.bos
    }

    pub fn eos(&self) -> Option<Token> {
        self.eos
    }

    /// Render a conversation with the model's chat template.
    pub fn render_chat(&self, messages: &[crate::ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.chat.render(messages, add_generation_prompt)
    }

    /// Render a conversation with tool definitions (OpenAI shape) given to
    /// the template as `tools`.
    pub fn render_chat_with_tools(
        &self,
        messages: &[crate::ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.chat.render_with_tools(messages, tools, add_generation_prompt)
    }

    /// Render a conversation and tokenise it for generation. Templates that
    /// write the BOS text themselves must not get a second BOS from the
    /// tokenizer.
    pub fn tokenize_chat(
        &self,
        messages: &[crate::ChatMessage],
        tools: Option<&serde_json::Value>,
    ) -> Result<Vec<Token>> {
        let text = self.render_chat_with_tools(messages, tools, true)?;
        let has_bos = self.bos().is_some_and(|b| text.starts_with(&self.token_text(b)));
        self.tokenize(&text, !has_bos, true)
    }

    /// Which renderer this model's chat template uses.
    pub fn chat_renderer(&self) -> &ChatRenderer {
        &self.chat
    }

    /// Refuse a draft model whose vocabulary differs from this one's.
    pub fn check_same_vocab(&self, other: &Model) -> std::result::Result<(), String> {
        if self.n_vocab() != other.n_vocab() {
            return Err(format!("vocabulary sizes differ: {} vs {}", self.n_vocab(), other.n_vocab()));
        }
        for t in 0..self.n_vocab() {
            if self.token_text(t) != other.token_text(t) || self.is_eog(t) != other.is_eog(t) {
                return Err(format!("token {t} differs: {:?} vs {:?}", self.token_text(t), other.token_text(t)));
            }
        }
        Ok(())
    }

    /// Positions with more than one axis (M-RoPE), which give each KV cell
    /// extra data.
    pub(crate) fn multi_axis_positions(&self) -> bool {
        // SAFETY: live model pointer.
        let rope = unsafe { sys::llama_model_rope_type(self.as_ptr()) };
        rope & sys::LLAMA_ROPE_TYPE_MROPE != 0
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::llama_model {
        self.ptr.as_ptr()
    }
}

/// The Rust gate every file passes before llama.cpp opens it.
pub fn check_file(path: &Path, overrides: &[MetaOverride]) -> Result<GgufFile> {
    let gguf = augur_gguf::read_file(path).map_err(|source| EngineError::Gguf { path: path.to_path_buf(), source })?;
    augur_gguf::validate_model(&gguf, overrides)
        .map_err(|source| EngineError::Invalid { path: path.to_path_buf(), source })?;
    Ok(gguf)
}

/// An `<arch>.expert_used_count` override that llama.cpp did not apply is
/// refused rather than served silently with the file's count. A missing
/// report (the log line was not seen) is not an error: the check is a
/// safety net, and the Rust validator already refused the known ways an
/// override can be ignored.
fn check_expert_override(info: &ModelInfo, overrides: &[MetaOverride]) -> Result<()> {
    let key = format!("{}.expert_used_count", info.arch);
    let Some(o) = overrides.iter().rev().find(|o| o.key == key) else { return Ok(()) };
    let (OverrideValue::Int(want), Some(got)) = (&o.value, info.n_expert_used) else { return Ok(()) };
    if i64::from(got) != *want {
        return Err(EngineError::Override(format!("{key}={want} did not take effect: llama.cpp loaded {got}")));
    }
    Ok(())
}

/// Build llama.cpp's override array ourselves: llama-cpp-2's helper panics on
/// long or non-ASCII keys. `MetaOverride::parse` already refused those; this
/// re-checks so the copy below can never truncate.
fn kv_overrides(overrides: &[MetaOverride]) -> Result<Vec<sys::llama_model_kv_override>> {
    let mut out = Vec::with_capacity(overrides.len() + 1);
    for o in overrides {
        out.push(kv_override(o)?);
    }
    // SAFETY: an all-zero override (tag 0, empty key) is the terminator.
    out.push(unsafe { std::mem::zeroed() });
    Ok(out)
}

fn kv_override(o: &MetaOverride) -> Result<sys::llama_model_kv_override> {
    // SAFETY: the struct is plain data; all-zero is a valid starting point.
    let mut kv: sys::llama_model_kv_override = unsafe { std::mem::zeroed() };
    copy_c_str(&mut kv.key, &o.key)?;
    match &o.value {
        OverrideValue::Int(v) => {
            kv.tag = sys::LLAMA_KV_OVERRIDE_TYPE_INT;
            kv.__bindgen_anon_1.val_i64 = *v;
        }
        OverrideValue::Float(v) => {
            kv.tag = sys::LLAMA_KV_OVERRIDE_TYPE_FLOAT;
            kv.__bindgen_anon_1.val_f64 = *v;
        }
        OverrideValue::Bool(v) => {
            kv.tag = sys::LLAMA_KV_OVERRIDE_TYPE_BOOL;
            kv.__bindgen_anon_1.val_bool = *v;
        }
        OverrideValue::Str(v) => {
            kv.tag = sys::LLAMA_KV_OVERRIDE_TYPE_STR;
            // SAFETY: writing the str arm of the union, which is plain bytes.
            copy_c_str(unsafe { &mut kv.__bindgen_anon_1.val_str }, v)?;
        }
    }
    Ok(kv)
}

fn copy_c_str(dst: &mut [c_char; 128], s: &str) -> Result<()> {
    if s.len() >= dst.len() || !s.is_ascii() || s.bytes().any(|b| b == 0) {
        return Err(EngineError::Override(format!("{s:?} must be ASCII, without NUL, under 128 bytes")));
    }
    for (d, b) in dst.iter_mut().zip(s.bytes()) {
        *d = b as c_char;
    }
    Ok(())
}
