//! A team of roles over HTTP, on the real small models: residency under a
//! budget too small for two models, a remote backend against a second
//! server on loopback, and escalation when the first role's answer is not
//! the JSON the request asked for.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use augur_orch::registry::{plan_instances, worker_config, InstancePlan, LoadFn, RegistryOptions};
use augur_orch::{check_files, Registry, TeamConfig};
use augur_runtime::{Backend, ModelWorker};
use augur_server::team::Team;
use augur_server::ServerOptions;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Running {
    base: String,
    team: Arc<Team>,
    _stop: oneshot::Sender<()>,
}

fn team(text: &str, budget: u64) -> Arc<Team> {
    let cfg = TeamConfig::from_toml(text).expect("config");
    let store = augur_store::Store::open_default().expect("AUGUR_HOME");
    let paths = check_files(&cfg, &|s: &str| store.ensure(s, false).map_err(|e| e.to_string())).expect("files");
    let instances = plan_instances(&cfg, &paths).expect("instances");
    let state_dir = store.root().parent().map(Path::to_path_buf);
    let load: LoadFn = Arc::new(move |inst: &InstancePlan| {
        let w = ModelWorker::spawn(worker_config(inst, 4, state_dir.as_deref())).map_err(|e| e.to_string())?;
        Ok(Arc::new(w) as Arc<dyn Backend>)
    });
    let opts = RegistryOptions { budget, load_timeout: Duration::from_secs(120), remote_capacity: 4 };
    let registry = Registry::new(instances, &cfg, opts, load);
    Arc::new(Team::new(Arc::new(cfg), registry))
}

async fn start(text: &str, budget: u64) -> Running {
    start_with(text, budget, ServerOptions::default()).await
}

async fn start_with(text: &str, budget: u64, opts: ServerOptions) -> Running {
    let team = team(text, budget);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = opts.resolve("auto").expect("server config");
    let t = team.clone();
    let rt = tokio::runtime::Handle::current();
    let loader = move || -> Result<Arc<dyn Backend>, String> {
        rt.block_on(t.registry.load_hot()).map_err(|e| e.to_string())?;
        let lease = rt.block_on(t.registry.acquire_role(&t.cfg.routing.default)).map_err(|e| e.to_string())?;
        Ok(lease.backend().clone())
    };
    let (tx, rx) = oneshot::channel::<()>();
    let stop = async move {
        let _ = rx.await;
    };
    tokio::spawn(augur_server::serve_on(listener, config, Some(team.clone()), Box::new(loader), stop));
    Running { base, team, _stop: tx }
}

/// POST a chat request; (status, x-augur-role header, raw body).
async fn post_chat(base: &str, body: Value) -> (u16, Option<String>, String) {
    let url = format!("{base}/v1/chat/completions");
    tokio::task::spawn_blocking(move || {
        let resp = match ureq::post(&url).set("Content-Type", "application/json").send_string(&body.to_string()) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = resp.status();
        let role = resp.header("x-augur-role").map(str::to_string);
        (status, role, resp.into_string().expect("body"))
    })
    .await
    .expect("request task")
}

/// POST a chat request; (status, x-augur-role header, JSON body).
async fn chat(base: &str, body: Value) -> (u16, Option<String>, Value) {
    let (status, role, text) = post_chat(base, body).await;
    (status, role, serde_json::from_str(&text).expect("json body"))
}

async fn get(base: &str, path: &str) -> Value {
    let url = format!("{base}{path}");
    tokio::task::spawn_blocking(move || ureq::get(&url).call().expect("get").into_json::<Value>().expect("json"))
        .await
        .expect("task")
}

fn content(v: &Value) -> &str {
    v["choices"][0]["message"]["content"].as_str().unwrap_or_default()
}

fn state_of(models: &Value, id: &str) -> String {
    let m = models["data"].as_array().and_then(|d| d.iter().find(|m| m["id"] == id)).expect("listed");
    m["augur"]["state"].as_str().unwrap_or_default().to_string()
}

const TWO_MODELS: &str = r#"
[models.small]
source = "gemma-3-270m"
memory = "600MB"
[models.qwen]
source = "qwen2.5-coder-0.5b"
memory = "700MB"
[roles.chat]
model = "small"
[roles.coder]
model = "qwen"
[routing]
default = "chat"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn residency_unloads_one_model_to_load_the_other() {
    // 1 GB holds either model (600 or 700 MB) but not both.
    let s = start(TWO_MODELS, 1_000_000_000).await;
    let ask = |model: &str| {
        json!({"model": model, "messages": [{"role": "user", "content": "Say hi."}],
                                   "max_tokens": 4, "temperature": 0})
    };
    let (code, role, body) = chat(&s.base, ask("chat")).await;
    assert_eq!((code, role.as_deref()), (200, Some("chat")), "{body}");
    let models = get(&s.base, "/v1/models").await;
    assert_eq!((state_of(&models, "small").as_str(), state_of(&models, "qwen").as_str()), ("loaded", "unloaded"));
    let (code, role, body) = chat(&s.base, ask("coder")).await;
    assert_eq!((code, role.as_deref()), (200, Some("coder")), "{body}");
    assert_eq!(body["augur"]["role"], "coder");
    let models = get(&s.base, "/v1/models").await;
    assert_eq!((state_of(&models, "small").as_str(), state_of(&models, "qwen").as_str()), ("unloaded", "loaded"));
    assert_eq!(state_of(&models, "chat"), "unloaded");
    assert!(s.team.registry.used() <= 1_000_000_000);
    // And back: the least recently used model makes room again.
    let (code, _, _) = chat(&s.base, ask("small")).await;
    assert_eq!(code, 200);
    let models = get(&s.base, "/v1/models").await;
    assert_eq!((state_of(&models, "small").as_str(), state_of(&models, "qwen").as_str()), ("loaded", "unloaded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_over_the_whole_budget_is_refused_cleanly() {
    let s = start(TWO_MODELS, 650_000_000).await;
    let body = json!({"model": "coder", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let (code, _, v) = chat(&s.base, body).await;
    assert_eq!(code, 503, "{v}");
    assert!(v["error"]["message"].as_str().unwrap_or_default().contains("budget"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_backend_streams_from_a_second_server() {
    let near = start(
        "[models.small]\nsource = \"gemma-3-270m\"\nresidency = \"hot\"\n[roles.chat]\nmodel = \"small\"\n",
        u64::MAX,
    )
    .await;
    let far_cfg = format!(
        "[models.small]\nsource = \"gemma-3-270m\"\n[roles.local]\nmodel = \"small\"\n\
         [roles.far]\nbackend = {{ type = \"openai\", base_url = \"{}/v1\", model = \"chat\" }}\n[routing]\ndefault = \"local\"\n",
        near.base
    );
    let front = start(&far_cfg, u64::MAX).await;
    let msg = json!([{"role": "user", "content": "Name three colours."}]);
    let (code, _, direct) =
        chat(&near.base, json!({"model": "chat", "messages": msg, "max_tokens": 24, "temperature": 0})).await;
    assert_eq!(code, 200, "{direct}");
    let (code, role, via) =
        chat(&front.base, json!({"model": "far", "messages": msg, "max_tokens": 24, "temperature": 0})).await;
    assert_eq!((code, role.as_deref()), (200, Some("far")), "{via}");
    assert!(!content(&direct).is_empty());
    assert_eq!(content(&via), content(&direct), "greedy output is the same through the remote backend");
    assert_eq!(via["usage"]["completion_tokens"], direct["usage"]["completion_tokens"]);
    assert_eq!(via["model"], "chat");
    // The local model of the front server never had to load for this.
    let models = get(&front.base, "/v1/models").await;
    assert_eq!(state_of(&models, "far"), "remote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_escalates_to_the_next_role() {
    let cfg = r#"
[models.small]
source = "gemma-3-270m"
[models.qwen]
source = "qwen2.5-coder-0.5b"
[roles.first]
model = "qwen"
system_prompt = "Answer in one short English sentence. Never use JSON, braces or code."
escalation = ["second"]
[roles.second]
model = "qwen"
system_prompt = "You output only a single JSON object, with no prose and no code fences."
[routing]
default = "first"
"#;
    let s = start(cfg, u64::MAX).await;
    let body = json!({"model": "auto", "max_tokens": 64, "temperature": 0,
        "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "Describe the city of Paris with the keys name and country."}]});
    let (code, role, v) = chat(&s.base, body).await;
    assert_eq!((code, role.as_deref()), (200, Some("second")), "{v}");
    assert_eq!(v["augur"]["chain"], json!(["first", "second"]), "{v}");
    assert_eq!(v["augur"]["escalations"][0]["failed"]["check"], "invalid_json", "{v}");
    let text = content(&v).trim().trim_start_matches("```json").trim_end_matches("```");
    serde_json::from_str::<Value>(text.trim()).expect("the second role's answer is JSON");
}

const ONE_HOT: &str =
    "[models.small]\nsource = \"gemma-3-270m\"\nresidency = \"hot\"\n[roles.chat]\nmodel = \"small\"\n";

/// A streamed team request used to take two admission slots (the team's
/// and the stream's), so `--max-inflight 1` answered it 429 while nothing
/// else ran. Admission is one slot per request now, whatever the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_team_request_takes_one_admission_slot() {
    let opts = ServerOptions { max_inflight: Some(1), ..ServerOptions::default() };
    let s = start_with(ONE_HOT, u64::MAX, opts).await;
    let ask = |stream: bool| {
        json!({"model": "chat", "messages": [{"role": "user", "content": "Say hi."}],
               "max_tokens": 8, "temperature": 0, "stream": stream})
    };
    for i in 0..3 {
        let (code, _, sse) = post_chat(&s.base, ask(true)).await;
        assert_eq!(code, 200, "streamed request {i}: {sse}");
        assert!(sse.contains("\"content\""), "streamed request {i} carries content: {sse}");
        assert!(sse.trim_end().ends_with("data: [DONE]"), "streamed request {i} ends: {sse}");
    }
    let (code, _, v) = chat(&s.base, ask(false)).await;
    assert_eq!(code, 200, "{v}");
    assert!(!content(&v).is_empty(), "{v}");
}

/// An upstream that cannot be reached is the upstream's failure (502), not
/// a model that failed to load, and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_remote_role_is_a_bad_gateway() {
    // A port nothing listens on: bind one, then let it go.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let cfg = format!(
        "{ONE_HOT}[roles.far]\nbackend = {{ type = \"openai\", base_url = \"http://{dead}/v1\", model = \"x\" }}\n\
         [routing]\ndefault = \"chat\"\n"
    );
    let s = start(&cfg, u64::MAX).await;
    let body = json!({"model": "far", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4});
    let (code, _, v) = chat(&s.base, body).await;
    assert_eq!(code, 502, "{v}");
    assert_eq!(v["error"]["type"], "server_error", "{v}");
    let ok = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    assert_eq!(chat(&s.base, ok).await.0, 200);
}
