//! Replacements for builtin filters and Python string methods whose output
//! can be much larger than their input. Each checks the size it is about to
//! produce, then delegates to the original implementation.

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, State};

use crate::guard::{budget, Bounded, Budget};

/// Overrides the risky builtins in `env`.
pub(crate) fn install(env: &mut Environment<'static>) {
    env.add_filter("__raw_replace", minijinja::filters::replace);
    env.add_filter("__raw_indent", minijinja::filters::indent);
    env.add_filter("__raw_format", minijinja::filters::format);
    env.add_filter("replace", replace_filter);
    env.add_filter("indent", indent_filter);
    env.add_filter("format", format_filter);
    env.add_filter("join", join_filter);
    env.add_filter("string", string_filter);
    env.add_filter("pprint", pprint_filter);
    env.add_filter("__raw_list", minijinja::filters::list);
    env.add_filter("__raw_sort", minijinja::filters::sort);
    env.add_filter("__raw_unique", minijinja::filters::unique);
    env.add_filter("__raw_batch", minijinja::filters::batch);
    env.add_filter("__raw_slice", minijinja::filters::slice);
    env.add_filter("__raw_map", minijinja::filters::map);
    env.add_filter("__raw_groupby", minijinja::filters::groupby);
    for (name, raw) in [
        ("list", "__raw_list"),
        ("sort", "__raw_sort"),
        ("unique", "__raw_unique"),
        ("batch", "__raw_batch"),
        ("slice", "__raw_slice"),
        ("map", "__raw_map"),
        ("groupby", "__raw_groupby"),
    ] {
        env.add_filter(name, move |state: &State, args: Rest<Value>| {
            check_list_input(state, &args)?;
            state.apply_filter(raw, &args)
        });
    }
    env.add_filter("__raw_split", minijinja::filters::split);
    env.add_filter("__raw_lines", minijinja::filters::lines);
    for (name, raw, method) in [("split", "__raw_split", "split"), ("lines", "__raw_lines", "splitlines")] {
        env.add_filter(name, move |state: &State, args: Rest<Value>| {
            let rest = args.get(1..).unwrap_or(&[]);
            budget(state)?.check_items(string_method_items(arg_str(&args, 0), method, rest))?;
            state.apply_filter(raw, &args)
        });
    }
    env.set_unknown_method_callback(method_callback);
}

/// List-building filters materialise one value per input item (a string's
/// characters included) and `batch`/`slice` one per requested group, so
/// both are checked before the list exists.
fn check_list_input(state: &State, args: &[Value]) -> Result<(), Error> {
    let budget = budget(state)?;
    let items = match args.first() {
        Some(v) => match v.as_str() {
            Some(s) => s.chars().count(),
            None => budget.count_items(v)?,
        },
        None => 0,
    };
    budget.check_items(items.max(arg_usize(args, 1)))
}

fn arg_str(args: &[Value], idx: usize) -> &str {
    args.get(idx).and_then(Value::as_str).unwrap_or("")
}

fn arg_usize(args: &[Value], idx: usize) -> usize {
    args.get(idx).and_then(Value::as_i64).map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// Exact length of `s.replace(old, new)` (Python semantics, optional count).
fn replaced_len(s: &str, old: &str, new: &str, count: Option<usize>) -> usize {
    let found = if old.is_empty() { s.chars().count().saturating_add(1) } else { s.matches(old).count() };
    let n = count.map_or(found, |c| c.min(found));
    s.len().saturating_sub(n.saturating_mul(old.len())).saturating_add(n.saturating_mul(new.len()))
}

fn replace_filter(state: &State, args: Rest<Value>) -> Result<Value, Error> {
    let len = replaced_len(arg_str(&args, 0), arg_str(&args, 1), arg_str(&args, 2), None);
    budget(state)?.check_string(len)?;
    state.apply_filter("__raw_replace", &args)
}

fn indent_filter(state: &State, args: Rest<Value>) -> Result<Value, Error> {
    let s = arg_str(&args, 0);
    let lines = s.matches('\n').count().saturating_add(1);
    budget(state)?.check_string(s.len().saturating_add(lines.saturating_mul(arg_usize(&args, 1))))?;
    state.apply_filter("__raw_indent", &args)
}

/// Upper bound for `fmt % args` / `fmt.format(args)`: the format text, every
/// argument's text, and every number in the format (a width or precision).
fn format_bound(budget: &Budget, fmt: &str, args: &[Value]) -> Result<usize, Error> {
    let cap = budget.limits().max_string_bytes;
    let mut total = fmt.len();
    for number in fmt.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty()) {
        total = total.saturating_add(number.parse::<usize>().unwrap_or(usize::MAX));
    }
    for arg in args.iter().filter(|a| !a.is_kwargs()) {
        total = total.saturating_add(budget.py_str(arg, cap, "max_string_bytes")?.len());
    }
    Ok(total)
}

fn format_filter(state: &State, args: Rest<Value>) -> Result<Value, Error> {
    let budget = budget(state)?;
    let bound = format_bound(&budget, arg_str(&args, 0), args.get(1..).unwrap_or(&[]))?;
    budget.check_string(bound)?;
    state.apply_filter("__raw_format", &args)
}

/// Joins the text of every item, refusing to grow past the string limit.
fn bounded_join(budget: &Budget, value: &Value, sep: &str) -> Result<Value, Error> {
    let mut out = Bounded::new(budget.limits().max_string_bytes);
    let items: Vec<Value> = if let Some(s) = value.as_str() {
        s.chars().map(Value::from).collect()
    } else {
        value.try_iter()?.take(budget.limits().max_list_items).collect()
    };
    for (idx, item) in items.iter().enumerate() {
        if (idx > 0 && !out.push(sep)) || !out.push_py(item) {
            return Err(budget.trip(out.overflow_error("max_string_bytes")));
        }
    }
    Ok(Value::from(out.buf))
}

fn join_filter(state: &State, value: Value, sep: Option<String>, _kw: Kwargs) -> Result<Value, Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(Value::from(""));
    }
    bounded_join(&*budget(state)?, &value, sep.as_deref().unwrap_or(""))
}

fn string_filter(state: &State, value: Value) -> Result<Value, Error> {
    if value.kind() == ValueKind::String {
        return Ok(value);
    }
    let budget = budget(state)?;
    let cap = budget.limits().max_string_bytes;
    Ok(Value::from(budget.py_str(&value, cap, "max_string_bytes")?))
}

fn pprint_filter(state: &State, value: Value) -> Result<Value, Error> {
    let budget = budget(state)?;
    let mut out = Bounded::new(budget.limits().max_string_bytes);
    if std::fmt::Write::write_fmt(&mut out, format_args!("{value:#?}")).is_err() {
        return Err(budget.trip(out.overflow_error("max_string_bytes")));
    }
    Ok(Value::from(out.buf))
}

/// Python string methods (minijinja-contrib `pycompat`) with size checks.
fn method_callback(state: &State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    let budget = budget(state)?;
    if let Some(s) = value.as_str() {
        if method == "join" {
            return bounded_join(&budget, args.first().unwrap_or(&Value::UNDEFINED), s);
        }
        budget.check_string(string_method_bound(&budget, s, method, args)?)?;
        budget.check_items(string_method_items(s, method, args))?;
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

fn string_method_bound(budget: &Budget, s: &str, method: &str, args: &[Value]) -> Result<usize, Error> {
    Ok(match method {
        "replace" => {
            let count = args.get(2).and_then(Value::as_i64).and_then(|c| usize::try_from(c).ok());
            replaced_len(s, arg_str(args, 0), arg_str(args, 1), count)
        }
        "center" | "ljust" | "rjust" | "zfill" => s.len().max(arg_usize(args, 0)),
        "expandtabs" => s.len().saturating_mul(arg_usize(args, 0).max(8)),
        "format" => format_bound(budget, s, args)?,
        _ => s.len(),
    })
}

/// How many items a splitting method would return.
fn string_method_items(s: &str, method: &str, args: &[Value]) -> usize {
    let sep = args.first().and_then(Value::as_str).filter(|sep| !sep.is_empty());
    match (method, sep) {
        ("split" | "rsplit", Some(sep)) => s.matches(sep).count().saturating_add(1),
        ("split" | "rsplit", None) => s.split_whitespace().count(),
        ("splitlines", _) => s.lines().count(),
        _ => 0,
    }
}
