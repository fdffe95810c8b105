//! Config errors, each with the message a user sees.

mod common;

use augur_orch::{check_files, OrchError, TeamConfig};

fn err(text: &str) -> String {
    TeamConfig::from_toml(text).map(|_| ()).unwrap_err().to_string()
}

const MODELS: &str = "[models.small]\nsource = \"gemma-3-270m\"\n[models.qwen]\nsource = \"qwen2.5-coder-0.5b\"\n";

#[test]
fn the_example_config_is_valid_and_its_files_check() {
    let cfg = common::example();
    assert!(cfg.roles.contains_key("frontdoor") && cfg.roles.contains_key("coder"));
    assert_eq!(cfg.chain("worker"), vec!["worker", "coder"]);
    let paths = check_files(&cfg, &common::resolver()).expect("files check");
    assert_eq!(paths.len(), 3);
}

#[test]
fn prefix_cache_is_read_and_checked() {
    use augur_runtime::PrefixReuse;
    let cfg =
        TeamConfig::from_toml("[models.a]\nsource = \"x\"\nprefix_cache = \"prompt\"\n[models.b]\nsource = \"y\"\n")
            .expect("valid");
    assert_eq!(cfg.models["a"].prefix_cache, PrefixReuse::Prompt);
    assert_eq!(cfg.models["b"].prefix_cache, PrefixReuse::Conversation);
    let e = err("[models.a]\nsource = \"x\"\nprefix_cache = \"always\"\n");
    assert!(e.contains("prefix_cache") || e.contains("always"), "{e}");
}

#[test]
fn unknown_keys_are_reported_with_their_path() {
    let e = err(&format!("{MODELS}[roles.coder]\nmodel = \"qwen\"\ntemprature = 0.2\n"));
    assert!(e.contains("roles.coder") && e.contains("unknown field `temprature`"), "{e}");
    let e = err(&format!("{MODELS}[roles.coder]\nmodel = \"qwen\"\n[roles.coder.defaults]\ntop_q = 1\n"));
    assert!(e.contains("roles.coder.defaults") && e.contains("top_q"), "{e}");
    let e = err("[routing]\n[[routing.rules]]\nrole = \"x\"\nkeyword = [\"a\"]\n");
    assert!(e.contains("routing.rules[0]") || e.contains("routing.rules.0"), "{e}");
}

#[test]
fn missing_models_and_unknown_roles_are_named() {
    let e = err(&format!("{MODELS}[roles.coder]\nmodel = \"qwen-7b\"\n"));
    assert!(
        e.contains("roles.coder.model") && e.contains("`qwen-7b` is not defined") && e.contains("qwen, small"),
        "{e}"
    );
    let e = err(&format!("{MODELS}[roles.coder]\nmodel = \"qwen\"\nescalation = [\"architect\"]\n"));
    assert!(e.contains("roles.coder.escalation[0]") && e.contains("role `architect` is not defined"), "{e}");
    let e = err(&format!("{MODELS}[roles.coder]\nmodel = \"qwen\"\nescalation = [\"coder\"]\n"));
    assert!(e.contains("cannot escalate to itself"), "{e}");
    let e = err(&format!("{MODELS}[roles.coder]\nmodel = \"qwen\"\nacceleration = {{ draft = \"drafter\" }}\n"));
    assert!(e.contains("roles.coder.acceleration.draft") && e.contains("`drafter`"), "{e}");
    let e = err(&format!("{MODELS}[roles.coder]\nmodel = \"qwen\"\n[routing]\ndefault = \"boss\"\n"));
    assert!(e.contains("routing.default") && e.contains("`boss`"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!(
        "{MODELS}[roles.a]\nmodel = \"nope\"\n[roles.b]\nmodel = \"qwen\"\nescalation = [\"zz\"]\n\
         [[routing.rules]]\nrole = \"b\"\nregex = \"(unclosed\"\n"
    );
    let e = TeamConfig::from_toml(&text).map(|_| ()).unwrap_err();
    assert_eq!(e.problems().len(), 3, "{e}");
    assert!(e.to_string().contains("routing.rules[0].regex"), "{e}");
}

#[test]
fn backends_and_values_are_checked() {
    let e = err("[roles.r.backend]\ntype = \"grpc\"\n");
    assert!(e.contains("roles.r.backend") && e.contains("grpc"), "{e}");
    let e = err("[roles.r]\nbackend = { type = \"openai\", base_url = \"ftp://x\" }\n");
    assert!(e.contains("base_url") && e.contains("http://"), "{e}");
    let e = err(
        "[roles.r]\nbackend = { type = \"openai\", base_url = \"http://x\", api_key_env = \"AUGUR_NO_SUCH_VAR_9\" }\n",
    );
    assert!(e.contains("AUGUR_NO_SUCH_VAR_9 is not set"), "{e}");
    let e = err(&format!("{MODELS}[roles.r]\nmodel = \"qwen\"\nacceleration = {{ spec_max = 0, experts = 0 }}\n"));
    assert!(e.contains("spec_max") && e.contains("experts"), "{e}");
    let e = err(&format!("{MODELS}[roles.r]\nmodel = \"qwen\"\ndefaults = {{ temperature = 3.0 }}\n"));
    assert!(e.contains("roles.r.defaults.temperature"), "{e}");
    let e = err("[models.m]\nsource = \"x\"\noverrides = [\"no-equals\"]\n");
    assert!(e.contains("models.m.overrides[0]"), "{e}");
    let e = err("[models.auto]\nsource = \"x\"\n");
    assert!(e.contains("models.auto") && e.contains("not \"auto\""), "{e}");
    let tree =
        TeamConfig::from_toml(&format!("{MODELS}[roles.r]\nmodel = \"qwen\"\nacceleration = {{ spec_tree = true }}\n"));
    assert!(tree.unwrap().roles["r"].accel.spec_tree, "spec_tree reaches the role");
    let e = err(&format!("{MODELS}[roles.r]\nmodel = \"qwen\"\nacceleration = {{ spec_tree = 1 }}\n"));
    assert!(e.contains("spec_tree"), "{e}");
    let sfx = TeamConfig::from_toml(&format!(
        "{MODELS}[roles.r]\nmodel = \"qwen\"\nacceleration = {{ suffix_min_prob = 0.1 }}\n[roles.s]\nmodel = \"qwen\"\n"
    ))
    .expect("valid");
    let t = sfx.roles["r"].accel.suffix.expect("suffix tuning reaches the role");
    assert_eq!(t.min_token_prob, 0.1);
    assert_eq!(t.spec_factor, augur_runtime::SuffixTuning::default().spec_factor);
    assert!(sfx.roles["s"].accel.suffix.is_none());
    let e = err(&format!(
        "{MODELS}[roles.r]\nmodel = \"qwen\"\nacceleration = {{ suffix_min_prob = 1.5, suffix_factor = -2.0 }}\n"
    ));
    assert!(e.contains("suffix_min_prob") && e.contains("suffix_factor"), "{e}");
    let ok =
        TeamConfig::from_toml("[roles.r]\nbackend = { type = \"openai\", base_url = \"http://h:1/v1\" }\n").unwrap();
    assert!(matches!(&ok.roles["r"].backend, augur_orch::RoleBackend::OpenAi(s) if s.model == "r"));
}

#[test]
fn a_draft_with_another_vocabulary_is_refused() {
    let text = format!(
        "{MODELS}[roles.coder]\nmodel = \"qwen\"\nacceleration = {{ draft = \"d\" }}\n[roles.d]\nmodel = \"small\"\n"
    );
    let cfg = TeamConfig::from_toml(&text).expect("the text alone is fine");
    let e = check_files(&cfg, &common::resolver()).unwrap_err();
    assert!(matches!(e, OrchError::VocabMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("roles.coder.acceleration.draft") && msg.contains("different vocabulary"), "{msg}");
    // Same tokenizer: the 0.5B drafts for the 1.5B.
    let good = "[models.t]\nsource = \"qwen2.5-coder-1.5b\"\n[models.q]\nsource = \"qwen2.5-coder-0.5b\"\n\
                [roles.coder]\nmodel = \"t\"\nacceleration = { draft = \"d\" }\n[roles.d]\nmodel = \"q\"\n";
    check_files(&TeamConfig::from_toml(good).unwrap(), &common::resolver()).expect("same vocabulary");
}

#[test]
fn missing_sources_and_dense_expert_counts_are_refused() {
    let text = "[models.m]\nsource = \"/nonexistent/model.gguf\"\n[roles.r]\nmodel = \"m\"\n";
    let e = check_files(&TeamConfig::from_toml(text).unwrap(), &common::resolver()).unwrap_err();
    assert!(e.to_string().contains("models.m.source"), "{e}");
    let text = "[models.m]\nsource = \"gemma-3-270m\"\n[roles.r]\nmodel = \"m\"\nacceleration = { experts = 2 }\n";
    let e = check_files(&TeamConfig::from_toml(text).unwrap(), &common::resolver()).unwrap_err();
    assert!(e.to_string().contains("not a mixture of experts"), "{e}");
}
