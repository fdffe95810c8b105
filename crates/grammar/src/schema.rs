//! Checks and rewrites of a request's JSON schemas before llguidance sees
//! them.
//!
//! A schema that must contain itself (`{"$ref": "#"}`, a `$defs` cycle, a
//! required property of its own type) has no finite instance. llguidance
//! either refuses it with an unhelpful message or, once the schema is
//! embedded in a tool call, compiles it and decoding later runs into its
//! limits: an internal error after seconds of generation. So such cycles
//! are found here, in one linear pass, and refused as the client's.
//! Recursion with a way out (an optional property, an array that may be
//! empty, an `anyOf` branch) is fine and left alone.

use std::collections::HashMap;

use serde_json::Value;

use crate::GrammarError;

/// Keywords whose values are data, not subschemas.
const DATA_KEYWORDS: [&str; 4] = ["const", "enum", "default", "examples"];

/// Node identity: the address of the value inside the borrowed schema.
type Id = *const Value;

/// Refuse a schema some part of which can only be satisfied by an infinite
/// value. Linear in the schema's size; no recursion, so any depth is safe.
pub fn check_recursion(root: &Value) -> Result<(), GrammarError> {
    // `false`: on the current path; `true`: finished, no cycle through it.
    let mut state: HashMap<Id, bool> = HashMap::new();
    for start in reachable(root) {
        if state.contains_key(&(start as Id)) {
            continue;
        }
        state.insert(start, false);
        let mut stack = vec![(start, must_contain(root, start), 0usize)];
        while let Some((node, next, i)) = stack.last_mut() {
            let Some(&child) = next.get(*i) else {
                state.insert(*node as Id, true);
                stack.pop();
                continue;
            };
            *i += 1;
            match state.get(&(child as Id)) {
                Some(false) => return Err(GrammarError::Recursive { pointer: pointer_to(root, child) }),
                Some(true) => {}
                None => {
                    state.insert(child, false);
                    stack.push((child, must_contain(root, child), 0));
                }
            }
        }
    }
    Ok(())
}

/// Every subschema reachable from the root, through `$ref`s included.
fn reachable(root: &Value) -> Vec<&Value> {
    let mut seen: HashMap<Id, ()> = HashMap::new();
    let mut order = Vec::new();
    let mut work = vec![root];
    while let Some(v) = work.pop() {
        if !v.is_object() || seen.insert(v as Id, ()).is_some() {
            continue;
        }
        order.push(v);
        let Some(obj) = v.as_object() else { continue };
        for (k, child) in obj {
            // Definitions count only where they are referred to.
            if DATA_KEYWORDS.contains(&k.as_str()) || k == "$defs" || k == "definitions" {
                continue;
            }
            match child {
                Value::Object(_) => work.push(child),
                Value::Array(a) => work.extend(a.iter()),
                _ => {}
            }
        }
        work.extend(local_ref(root, v));
    }
    order
}

/// The subschemas every instance of `node` must also satisfy, either as
/// itself (`$ref`, `allOf`, a lone `anyOf`/`oneOf` branch) or as a part
/// it cannot leave out (a required property, an array's first items).
fn must_contain<'a>(root: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    let Some(obj) = node.as_object() else { return Vec::new() };
    let mut out: Vec<&Value> = local_ref(root, node).into_iter().collect();
    if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        out.extend(all);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some([only]) = obj.get(key).and_then(Value::as_array).map(Vec::as_slice) {
            out.push(only);
        }
    }
    match obj.get("type").and_then(Value::as_str) {
        Some("object") => {
            let props = obj.get("properties").and_then(Value::as_object);
            let required = obj.get("required").and_then(Value::as_array).into_iter().flatten();
            out.extend(required.filter_map(|r| props?.get(r.as_str()?)));
        }
        Some("array") => {
            let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let prefix = match (obj.get("prefixItems"), obj.get("items")) {
                (Some(Value::Array(p)), _) | (None, Some(Value::Array(p))) => p.as_slice(),
                _ => &[],
            };
            let min = usize::try_from(min).unwrap_or(usize::MAX);
            out.extend(prefix.iter().take(min));
            if min > prefix.len() {
                out.extend(obj.get("items").filter(|i| i.is_object()));
            }
        }
        _ => {}
    }
    out.retain(|v| v.is_object());
    out
}

/// The target of `node`'s `$ref`, when it points into this document.
fn local_ref<'a>(root: &'a Value, node: &Value) -> Option<&'a Value> {
    let r = node.get("$ref")?.as_str()?.strip_prefix('#')?;
    if r.is_empty() {
        Some(root)
    } else {
        root.pointer(r)
    }
}

/// The JSON pointer of `target` inside `root`, for the error message.
fn pointer_to(root: &Value, target: &Value) -> String {
    let mut work = vec![(root, String::new())];
    while let Some((v, path)) = work.pop() {
        if std::ptr::eq(v, target) {
            return format!("#{path}");
        }
        let esc = |k: &str| k.replace('~', "~0").replace('/', "~1");
        match v {
            Value::Object(o) => work.extend(o.iter().map(|(k, c)| (c, format!("{path}/{}", esc(k))))),
            Value::Array(a) => work.extend(a.iter().enumerate().map(|(i, c)| (c, format!("{path}/{i}")))),
            _ => {}
        }
    }
    "#".into()
}

/// Make the local `$ref`s of a schema embedded at `base` (a JSON pointer
/// such as `/properties/arguments`) point where they pointed before: `#`
/// meant the schema's own root, not the document it was put into.
pub(crate) fn rebase_refs(schema: &mut Value, base: &str) {
    let mut work = vec![schema];
    while let Some(v) = work.pop() {
        match v {
            Value::Object(o) => {
                for (k, child) in o.iter_mut() {
                    match child {
                        Value::String(r) if k == "$ref" && r.starts_with('#') => {
                            *r = format!("#{base}{}", &r[1..]);
                        }
                        _ if DATA_KEYWORDS.contains(&k.as_str()) => {}
                        _ => work.push(child),
                    }
                }
            }
            Value::Array(a) => work.extend(a.iter_mut()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(schema: Value) -> String {
        match check_recursion(&schema) {
            Err(GrammarError::Recursive { pointer }) => pointer,
            other => panic!("{schema} -> {other:?}"),
        }
    }

    #[test]
    fn schemas_that_must_contain_themselves_are_refused() {
        assert_eq!(refused(json!({"$ref": "#"})), "#");
        let cycle = json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
        assert!(refused(cycle).starts_with("#/$defs/"));
        refused(json!({"allOf": [{"$ref": "#"}]}));
        refused(json!({"type": "object", "properties": {"x": {"$ref": "#"}}, "required": ["x"]}));
        refused(json!({"type": "array", "items": {"$ref": "#"}, "minItems": 1}));
        // Behind an optional property, still a part that cannot exist.
        let hidden = json!({"type": "object", "properties": {"p": {"$ref": "#/$defs/a"}},
            "$defs": {"a": {"$ref": "#/$defs/a"}}});
        assert_eq!(refused(hidden), "#/$defs/a");
    }

    #[test]
    fn recursion_with_a_way_out_is_accepted() {
        for ok in [
            json!({"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}),
            json!({"type": "object", "properties": {"next": {"$ref": "#"}}}),
            json!({"anyOf": [{"$ref": "#"}, {"type": "integer"}]}),
            json!({"$defs": {"a": {"type": "integer"}}, "$ref": "#/$defs/a"}),
            json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "type": "string"}),
            json!({"const": {"$ref": "#"}}),
            json!(true),
        ] {
            assert!(check_recursion(&ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn long_chains_do_not_overflow_the_stack() {
        let n = 100_000;
        let mut defs: serde_json::Map<String, Value> =
            (0..n).map(|i| (format!("d{i}"), json!({"$ref": format!("#/$defs/d{}", i + 1)}))).collect();
        defs.insert(format!("d{n}"), json!({"type": "integer"}));
        let mut chain = json!({"$defs": defs, "$ref": "#/$defs/d0"});
        let t = std::time::Instant::now();
        assert!(check_recursion(&chain).is_ok());
        chain["$defs"][format!("d{n}")] = json!({"$ref": "#/$defs/d0"});
        assert!(check_recursion(&chain).is_err());
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn embedded_refs_keep_their_meaning() {
        let mut s = json!({"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"},
            "b": {"$ref": "#"}, "c": {"const": {"$ref": "#"}}, "d": {"$ref": "other.json#/x"}}});
        rebase_refs(&mut s, "/properties/arguments");
        assert_eq!(s["properties"]["a"]["$ref"], "#/properties/arguments/$defs/n");
        assert_eq!(s["properties"]["b"]["$ref"], "#/properties/arguments");
        assert_eq!(s["properties"]["c"]["const"]["$ref"], "#");
        assert_eq!(s["properties"]["d"]["$ref"], "other.json#/x");
    }
}
