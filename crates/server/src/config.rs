//! Server settings: one struct read from flags and from a TOML file, then
//! validated into [`ServerConfig`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::ServerError;

/// Server options as given. Every field is optional so that a flag can
/// override the file and the file can override the default.
#[derive(Args, Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOptions {
    /// TOML file with these same settings (snake_case keys); flags win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on [default: 8080].
    #[arg(long)]
    pub port: Option<u16>,
    /// Name the model is served as, accepted besides its own name.
    #[arg(long)]
    pub alias: Option<String>,
    /// File of API keys, one per line; without it the API is open.
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Requests that may wait for the model; more get 429 [default: 16].
    #[arg(long)]
    pub queue: Option<usize>,
    /// Seconds a request may take, queueing included [default: 600].
    #[arg(long, value_name = "SECS")]
    pub request_timeout: Option<u64>,
    /// Largest max_tokens a request may ask for [default: 4096].
    #[arg(long)]
    pub max_tokens_limit: Option<u32>,
    /// Largest request body in bytes [default: 8 MiB].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Most messages in one chat request [default: 1024].
    #[arg(long)]
    pub max_messages: Option<usize>,
    /// Largest prompt in bytes, before templating [default: 1 MiB].
    #[arg(long)]
    pub max_prompt_bytes: Option<usize>,
    /// Largest stop string in bytes [default: 256].
    #[arg(long)]
    pub max_stop_bytes: Option<usize>,
    /// Generation and tokenisation requests handled at once, queued ones
    /// included; more get 429 [default: 64].
    #[arg(long)]
    pub max_inflight: Option<usize>,
}

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// The id the model is listed under in `/v1/models`.
    pub model_id: String,
    /// Every name a request's `model` may use.
    pub model_names: Vec<String>,
    /// Empty means no authentication.
    pub api_keys: Vec<Vec<u8>>,
    pub queue: usize,
    pub request_timeout: Duration,
    pub max_tokens_limit: u32,
    pub max_body_bytes: usize,
    pub max_messages: usize,
    pub max_prompt_bytes: usize,
    pub max_stop_bytes: usize,
    pub max_inflight: usize,
    /// Request line plus headers; hyper refuses much larger ones itself.
    pub max_header_bytes: usize,
    /// The request target (path and query); no route needs more than a
    /// few hundred bytes.
    pub max_uri_bytes: usize,
}

pub const MAX_STOP_STRINGS: usize = 4;

impl ServerOptions {
    /// Fill unset fields from `file`.
    fn over(self, file: ServerOptions) -> ServerOptions {
        ServerOptions {
            config: self.config,
            host: self.host.or(file.host),
            port: self.port.or(file.port),
            alias: self.alias.or(file.alias),
            api_key_file: self.api_key_file.or(file.api_key_file),
            queue: self.queue.or(file.queue),
            request_timeout: self.request_timeout.or(file.request_timeout),
            max_tokens_limit: self.max_tokens_limit.or(file.max_tokens_limit),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes),
            max_messages: self.max_messages.or(file.max_messages),
            max_prompt_bytes: self.max_prompt_bytes.or(file.max_prompt_bytes),
            max_stop_bytes: self.max_stop_bytes.or(file.max_stop_bytes),
            max_inflight: self.max_inflight.or(file.max_inflight),
        }
    }

    /// The server's keys of a config file; the team tables (`[models.*]`,
    /// `[roles.*]`, ...) belong to augur-orch and are skipped here.
    pub fn from_toml(text: &str) -> Result<ServerOptions, ServerError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ServerError::Config(e.to_string()))?;
        for key in augur_orch::config::TEAM_KEYS {
            table.remove(key);
        }
        table.try_into().map_err(|e: toml::de::Error| ServerError::Config(e.to_string()))
    }

    /// Merge with the config file (if any), apply defaults and validate.
    /// `model` is the name the model was given on the command line.
    pub fn resolve(self, model: &str) -> Result<ServerConfig, ServerError> {
        let opts = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ServerError::Config(format!("reading {}: {e}", path.display())))?;
                let file = ServerOptions::from_toml(&text)
                    .map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))?;
                self.over(file)
            }
            None => self,
        };
        opts.validate(model)
    }

    fn validate(self, model: &str) -> Result<ServerConfig, ServerError> {
        let host: IpAddr = match &self.host {
            Some(h) => h.parse().map_err(|_| ServerError::Config(format!("host {h:?} is not an IP address")))?,
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let model_id = self.alias.clone().unwrap_or_else(|| model.to_string());
        let mut model_names = vec![model_id.clone(), model.to_string()];
        model_names.dedup();
        let api_keys = match &self.api_key_file {
            Some(p) => read_keys(p)?,
            None => Vec::new(),
        };
        Ok(ServerConfig {
            addr: SocketAddr::new(host, self.port.unwrap_or(8080)),
            model_id,
            model_names,
            api_keys,
            queue: in_range("queue", self.queue.unwrap_or(16), 1, 4096)?,
            request_timeout: Duration::from_secs(in_range(
                "request_timeout",
                self.request_timeout.unwrap_or(600),
                1,
                86_400,
            )?),
            max_tokens_limit: in_range("max_tokens_limit", self.max_tokens_limit.unwrap_or(4096), 1, 1 << 20)?,
            max_body_bytes: in_range("max_body_bytes", self.max_body_bytes.unwrap_or(8 << 20), 1024, 1 << 30)?,
            max_messages: in_range("max_messages", self.max_messages.unwrap_or(1024), 1, 1 << 20)?,
            max_prompt_bytes: in_range("max_prompt_bytes", self.max_prompt_bytes.unwrap_or(1 << 20), 1, 1 << 30)?,
            max_stop_bytes: in_range("max_stop_bytes", self.max_stop_bytes.unwrap_or(256), 1, 1 << 16)?,
            max_inflight: in_range("max_inflight", self.max_inflight.unwrap_or(64), 1, 1 << 16)?,
            max_header_bytes: 64 << 10,
            max_uri_bytes: 8 << 10,
        })
    }
}

fn in_range<T: PartialOrd + std::fmt::Display>(name: &str, v: T, lo: T, hi: T) -> Result<T, ServerError> {
    if v < lo || v > hi {
        return Err(ServerError::Config(format!("{name} must be in {lo}..={hi}, got {v}")));
    }
    Ok(v)
}

/// One key per line; blank lines and `#` comments are skipped.
fn read_keys(path: &Path) -> Result<Vec<Vec<u8>>, ServerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServerError::Config(format!("reading API key file {}: {e}", path.display())))?;
    let keys: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.as_bytes().to_vec())
        .collect();
    if keys.is_empty() {
        // An empty file would silently leave the API open.
        return Err(ServerError::Config(format!("API key file {} holds no keys", path.display())));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_apply() {
        let file = ServerOptions::from_toml("port = 9000\nqueue = 3\nhost = \"0.0.0.0\"").unwrap();
        let cli = ServerOptions { port: Some(9100), ..ServerOptions::default() };
        let cfg = cli.over(file).validate("m").unwrap();
        assert_eq!(cfg.addr.port(), 9100);
        assert_eq!(cfg.queue, 3);
        assert_eq!(cfg.addr.ip().to_string(), "0.0.0.0");
        assert_eq!(cfg.max_tokens_limit, 4096);
        assert_eq!(cfg.model_names, vec!["m".to_string()]);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(ServerOptions::from_toml("bogus = 1").is_err());
        assert!(ServerOptions::from_toml("port = 70000").is_err());
        let o = ServerOptions { queue: Some(0), ..ServerOptions::default() };
        assert!(o.validate("m").is_err());
        let o = ServerOptions { host: Some("localhost:1".into()), ..ServerOptions::default() };
        assert!(o.validate("m").is_err());
    }

    #[test]
    fn key_file_skips_comments_and_must_not_be_empty() {
        let dir = std::env::temp_dir().join(format!("augur-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("keys");
        std::fs::write(&p, "# keys\n\nabc\n  def  \n").unwrap();
        assert_eq!(read_keys(&p).unwrap(), vec![b"abc".to_vec(), b"def".to_vec()]);
        std::fs::write(&p, "# none\n").unwrap();
        assert!(read_keys(&p).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
