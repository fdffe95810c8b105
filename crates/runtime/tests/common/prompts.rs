//! The greedy-identity prompt set: code generation, code editing where the
//! answer copies the input, and chat. Some end at end-of-generation, some
//! run into the token limit.
#![allow(dead_code)]

pub struct Case {
    pub id: &'static str,
    pub system: Option<&'static str>,
    pub user: String,
    pub max_tokens: u32,
}

const PY_SOURCE: &str = "def average(values):\n    total = 0\n    count = 0\n    for v in values:\n        total += v\n        count += 1\n    if count == 0:\n        return 0.0\n    return total / count\n";
const RS_SOURCE: &str = "pub fn parse_pairs(s: &str) -> Vec<(String, i64)> {\n    let mut out = Vec::new();\n    for part in s.split(',') {\n        let mut kv = part.splitn(2, '=');\n        let k = kv.next().unwrap_or(\"\").trim().to_string();\n        let v = kv.next().unwrap_or(\"0\").trim().parse().unwrap_or(0);\n        out.push((k, v));\n    }\n    out\n}\n";
const JS_SOURCE: &str = "function debounce(fn, wait) {\n  let timer = null;\n  return function (...args) {\n    clearTimeout(timer);\n    timer = setTimeout(() => fn.apply(this, args), wait);\n  };\n}\n";
const CONFIG: &str = "[server]\nhost = \"127.0.0.1\"\nport = 8080\nworkers = 4\n\n[database]\nurl = \"postgres://localhost/app\"\npool = 10\n";

pub fn cases() -> Vec<Case> {
    let c = |id, user: String, max_tokens| Case { id, system: None, user, max_tokens };
    vec![
        c("gen-palindrome", "Write a Python function is_palindrome(s) that ignores case and non-letters.".into(), 64),
        c("gen-fizzbuzz", "Write fizzbuzz in Rust, printing 1 to 15.".into(), 64),
        c("gen-sql", "Write a SQL query that returns the 5 customers with the highest total order amount.".into(), 48),
        c(
            "gen-regex",
            "Give a regular expression that matches ISO dates like 2024-01-31. Answer with the regex only.".into(),
            32,
        ),
        c("gen-bash", "Write a bash one-liner that counts lines in all .rs files under src.".into(), 40),
        c(
            "gen-struct",
            "Define a Go struct for a user with id, name, email and created_at, with JSON tags.".into(),
            64,
        ),
        c(
            "edit-rename-py",
            format!("Rename the variable `total` to `sum_value` and return the whole code:\n\n{PY_SOURCE}"),
            96,
        ),
        c(
            "edit-rust-doc",
            format!(
                "Add a doc comment to this function and return the complete code unchanged otherwise:\n\n{RS_SOURCE}"
            ),
            96,
        ),
        c(
            "edit-js-const",
            format!(
                "Change `let timer` to use a descriptive name `pendingTimer`, return the full code:\n\n{JS_SOURCE}"
            ),
            80,
        ),
        c("edit-config", format!("Change the port to 9090 and return the full file:\n\n{CONFIG}"), 64),
        c("edit-types-py", format!("Add type hints to this function and return it:\n\n{PY_SOURCE}"), 96),
        c(
            "edit-js-arrow",
            format!("Rewrite this with an arrow function for the returned function, keep the rest:\n\n{JS_SOURCE}"),
            80,
        ),
        c("chat-yes", "Reply with exactly the word: yes".into(), 16),
        c("chat-capital", "What is the capital of Japan? One word.".into(), 16),
        c("chat-explain", "Explain in two sentences what a hash map is.".into(), 64),
        c("chat-list", "List three benefits of unit tests, as a numbered list.".into(), 64),
        c("chat-count", "Count from 1 to 30, separated by commas.".into(), 96),
        c("chat-haiku", "Write a haiku about compilers.".into(), 40),
        c("chat-translate", "Translate to French: The weather is nice today.".into(), 32),
        c(
            "chat-json",
            "Return a JSON object with keys name and age for a 30 year old named Ada. JSON only.".into(),
            40,
        ),
        Case {
            id: "chat-system",
            system: Some("You are a terse assistant. Answer in one line."),
            user: "Why is the sky blue?".into(),
            max_tokens: 48,
        },
        c("chat-repeat", "Repeat this sentence three times: the quick brown fox jumps over the lazy dog.".into(), 64),
    ]
}
