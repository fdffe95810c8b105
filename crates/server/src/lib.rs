//! OpenAI-compatible HTTP server over the runtime's [`Backend`] trait.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/completions` (plain or
//! server-sent events), `GET /v1/models[/{id}]`, `POST /tokenize`,
//! `POST /detokenize`, `GET /metrics` (Prometheus) and `GET /health`.
//!
//! Design choices:
//! - The server listens before the model loads; `/health` answers 503
//!   `{"status":"loading"}` until the loader returns, then 200.
//! - One model worker runs one request at a time; others wait in its
//!   bounded queue (`--queue`) and a full queue is a 429 with `Retry-After`.
//!   Continuous batching would need per-sequence KV management in the
//!   worker; the bounded queue keeps memory flat and latency predictable.
//! - With API keys configured, every route but `/health` needs
//!   `Authorization: Bearer KEY` (so probes need no secret).
//! - Every error, including malformed JSON, unknown routes and errors in
//!   the middle of a stream, has OpenAI's `{"error": {...}}` shape. The
//!   exceptions are malformed HTTP framing (request line, `Content-Length`,
//!   `Transfer-Encoding`, header syntax) and a request head past hyper's own
//!   limit (~400 KiB): hyper 1's HTTP/1 server answers these with a bare
//!   400, 414 or 431 itself (`on_error` in its `proto/h1/role.rs`) before a
//!   request exists, and has no hook to add a body.
//! - Prompts are tokenised and checked against the context before they
//!   queue; nothing is ever truncated.

#![forbid(unsafe_code)]

mod config;
mod error;
mod extract;
mod generation;
mod handlers;
mod messages;
pub mod metrics;
mod middleware;
mod prompt;
mod request;
pub mod resolve;
mod state;
mod structured;
pub mod team;
mod toolcall;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use augur_runtime::Backend;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use config::{ServerConfig, ServerOptions};
pub use error::ServerError;
pub use state::AppState;

/// Builds the backend; runs on a blocking thread while the server listens.
pub type Loader = Box<dyn FnOnce() -> Result<Arc<dyn Backend>, String> + Send>;

/// How long in-flight requests may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The routes, with their middleware, over `state`.
pub fn router(state: AppState) -> Router {
    use axum::middleware::from_fn_with_state;
    Router::new()
        .route("/health", get(handlers::health))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models/{model}", get(handlers::get_model))
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/completions", post(handlers::completions))
        .route("/tokenize", post(handlers::tokenize))
        .route("/detokenize", post(handlers::detokenize))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(from_fn_with_state(state.clone(), middleware::authenticate))
        .layer(from_fn_with_state(state.clone(), middleware::limit_headers))
        .layer(from_fn_with_state(state.clone(), middleware::record))
        .with_state(state)
}

/// Serve until SIGINT/SIGTERM, loading the model in the background. Fails
/// if the address cannot be bound or the model does not load.
pub fn run(config: ServerConfig, loader: Loader) -> Result<(), ServerError> {
    run_with(config, None, loader)
}

/// Serve a team of roles: `loader` loads the hot models (through the team's
/// registry) and returns the backend `/tokenize` uses by default.
pub fn run_team(config: ServerConfig, team: Arc<team::Team>, loader: Loader) -> Result<(), ServerError> {
    run_with(config, Some(team), loader)
}

fn run_with(config: ServerConfig, team: Option<Arc<team::Team>>, loader: Loader) -> Result<(), ServerError> {
    init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(16).build()?;
    let result = rt.block_on(serve(config, team, loader));
    // Do not wait for a model that is still loading.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// Serve on an already bound listener until `stop` resolves (tests, and
/// embedding). `loader` runs as in [`run`].
pub async fn serve_on(
    listener: TcpListener,
    config: ServerConfig,
    team: Option<Arc<team::Team>>,
    loader: Loader,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let state = AppState::new(config, team);
    let _load_failed = spawn_loader(state.clone(), loader);
    axum::serve(listener, router(state).into_make_service()).with_graceful_shutdown(stop).await?;
    Ok(())
}

async fn serve(config: ServerConfig, team: Option<Arc<team::Team>>, loader: Loader) -> Result<(), ServerError> {
    let addr = config.addr;
    let listener =
        TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr: addr.to_string(), source })?;
    let local = listener.local_addr()?;
    let state = AppState::new(config, team);
    tracing::info!("listening on http://{local} (model {} loading)", state.config.model_id);
    let load_failed = spawn_loader(state.clone(), loader);
    let (stop_tx, stop_rx) = oneshot::channel::<Option<ServerError>>();
    let trigger = async move {
        let reason = tokio::select! {
            _ = shutdown_signal() => None,
            Ok(e) = load_failed => Some(e),
        };
        let _ = stop_tx.send(reason);
    };
    let app = router(state).into_make_service();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        // Streamed tokens should leave at once, not wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    let (inner_tx, inner_rx) = oneshot::channel::<()>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = inner_rx.await;
        })
        .into_future();
    let reason = drive(server, trigger, stop_rx, inner_tx).await?;
    match reason {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Run the server until the trigger fires, then give in-flight requests a
/// grace period.
async fn drive(
    server: impl Future<Output = std::io::Result<()>>,
    trigger: impl Future<Output = ()>,
    stop_rx: oneshot::Receiver<Option<ServerError>>,
    inner_tx: oneshot::Sender<()>,
) -> Result<Option<ServerError>, ServerError> {
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => { r?; return Ok(None) }
        () = trigger => {}
    }
    let reason = stop_rx.await.unwrap_or(None);
    tracing::info!("shutting down");
    let _ = inner_tx.send(());
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await.is_err() {
        tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping them");
    }
    Ok(reason)
}

/// Load on a blocking thread; the receiver yields the error if it fails.
fn spawn_loader(state: AppState, loader: Loader) -> oneshot::Receiver<ServerError> {
    let (tx, rx) = oneshot::channel();
    tokio::task::spawn_blocking(move || match loader() {
        Ok(backend) => {
            match backend.n_ctx() {
                Some(n) => tracing::info!("model {} ready (context {n} tokens)", state.config.model_id),
                None => tracing::info!("model {} ready", state.config.model_id),
            }
            state.set_backend(backend);
        }
        Err(e) => {
            tracing::error!("model failed to load: {e}");
            let _ = tx.send(ServerError::Load(e));
        }
    });
    rx
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
