//! Per-render budgets and the checked operations the rewritten bytecode calls.
//!
//! Every value-producing instruction is followed by a charge call (see
//! `rewrite`), so each produced string or list is measured and counted against
//! a cumulative budget. Operations whose result can be far larger than their
//! inputs (`*`, `+`, `~`, `join`, `replace`, padding, formatting, JSON) check
//! the size they are about to produce *before* allocating, because Rust aborts
//! the whole process when an allocation fails.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use minijinja::value::{Object, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Expression, Output, State};

use crate::{Limits, TemplateError};

pub(crate) const BUDGET_VAR: &str = "__augur_budget";
pub(crate) const CHARGE_FN: &str = "__augur_charge";
pub(crate) const CONCAT_FN: &str = "__augur_concat";
pub(crate) const ADD_FN: &str = "__augur_add";
pub(crate) const MUL_FN: &str = "__augur_mul";

/// Bytes charged per list item or map entry (a `Value` is 16-24 bytes).
const ITEM_COST: usize = 24;

/// Resource accounting for one render, shared with the template as an object.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: Limits,
    started: Instant,
    alloc: AtomicUsize,
    output: AtomicUsize,
    tripped: Mutex<Option<TemplateError>>,
}

impl Object for Budget {}

impl Budget {
    pub(crate) fn new(limits: Limits) -> Self {
        Budget {
            limits,
            started: Instant::now(),
            alloc: AtomicUsize::new(0),
            output: AtomicUsize::new(0),
            tripped: Mutex::new(None),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The first limit or exception recorded during the render, if any.
    pub(crate) fn take_tripped(&self) -> Option<TemplateError> {
        self.tripped.lock().ok().and_then(|mut t| t.take())
    }

    /// Records `err` (keeping the first one) and returns an engine error.
    pub(crate) fn trip(&self, err: TemplateError) -> Error {
        let msg = err.to_string();
        if let Ok(mut slot) = self.tripped.lock() {
            slot.get_or_insert(err);
        }
        Error::new(ErrorKind::InvalidOperation, msg)
    }

    fn check_time(&self) -> Result<(), Error> {
        let elapsed = self.started.elapsed();
        if elapsed <= self.limits.timeout {
            return Ok(());
        }
        let ms = |d: std::time::Duration| usize::try_from(d.as_millis()).unwrap_or(usize::MAX);
        Err(self.trip(TemplateError::over("timeout (ms)", ms(elapsed), ms(self.limits.timeout))))
    }

    fn add_alloc(&self, bytes: usize) -> Result<(), Error> {
        let total = self.alloc.fetch_add(bytes, Ordering::Relaxed).saturating_add(bytes);
        if total > self.limits.max_alloc_bytes {
            return Err(self.trip(TemplateError::over("max_alloc_bytes", total, self.limits.max_alloc_bytes)));
        }
        Ok(())
    }

    fn add_output(&self, bytes: usize) -> Result<(), Error> {
        let total = self.output.fetch_add(bytes, Ordering::Relaxed).saturating_add(bytes);
        if total > self.limits.max_output_bytes {
            return Err(self.trip(TemplateError::over("max_output_bytes", total, self.limits.max_output_bytes)));
        }
        Ok(())
    }

    fn remaining_output(&self) -> usize {
        self.limits.max_output_bytes.saturating_sub(self.output.load(Ordering::Relaxed))
    }

    /// Fails unless a string of `len` bytes is allowed to exist.
    pub(crate) fn check_string(&self, len: usize) -> Result<(), Error> {
        if len > self.limits.max_string_bytes {
            return Err(self.trip(TemplateError::over("max_string_bytes", len, self.limits.max_string_bytes)));
        }
        Ok(())
    }

    pub(crate) fn check_items(&self, count: usize) -> Result<(), Error> {
        if count > self.limits.max_list_items {
            return Err(self.trip(TemplateError::over("max_list_items", count, self.limits.max_list_items)));
        }
        Ok(())
    }

    /// Counts the items of a sequence, stopping just past the limit.
    pub(crate) fn count_items(&self, value: &Value) -> Result<usize, Error> {
        if let Some(len) = value.len().filter(|_| value.kind() != ValueKind::Iterable) {
            return Ok(len);
        }
        let cap = self.limits.max_list_items.saturating_add(1);
        Ok(value.try_iter().map(|it| it.take(cap).count()).unwrap_or(0))
    }

    /// Measures a freshly produced value and charges it to the budget.
    pub(crate) fn charge(&self, value: &Value) -> Result<(), Error> {
        self.check_time()?;
        if let Some(s) = value.as_str() {
            self.check_string(s.len())?;
            return self.add_alloc(s.len());
        }
        match value.kind() {
            ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
                let count = self.count_items(value)?;
                self.check_items(count)?;
                self.add_alloc(count.saturating_mul(ITEM_COST))
            }
            _ => Ok(()),
        }
    }

    /// Renders `value` the way Python's `str()` would, refusing to grow past `cap`.
    pub(crate) fn py_str(&self, value: &Value, cap: usize, limit: &'static str) -> Result<String, Error> {
        let mut out = Bounded::new(cap);
        if write_py_str(&mut out, value).is_err() || out.overflowed {
            return Err(self.trip(TemplateError::over(limit, out.attempted, cap)));
        }
        Ok(out.buf)
    }
}

/// A `String` writer that refuses to grow past a cap.
pub(crate) struct Bounded {
    pub(crate) buf: String,
    cap: usize,
    attempted: usize,
    overflowed: bool,
}

impl Bounded {
    pub(crate) fn new(cap: usize) -> Self {
        Bounded { buf: String::new(), cap, attempted: 0, overflowed: false }
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.attempted = self.attempted.saturating_add(s.len());
        if self.attempted > self.cap {
            self.overflowed = true;
            return Err(fmt::Error);
        }
        self.buf.push_str(s);
        Ok(())
    }
}

impl Bounded {
    /// Appends `value` as Python's `str()` would; false once over the cap.
    pub(crate) fn push_py(&mut self, value: &Value) -> bool {
        write_py_str(self, value).is_ok() && !self.overflowed
    }

    /// Appends `text`; false once over the cap.
    pub(crate) fn push(&mut self, text: &str) -> bool {
        fmt::Write::write_str(self, text).is_ok()
    }

    /// The error for a write that went over the cap.
    pub(crate) fn overflow_error(&self, limit: &'static str) -> TemplateError {
        TemplateError::over(limit, self.attempted, self.cap)
    }
}

/// Python spells booleans and none differently from minijinja.
fn write_py_str(out: &mut impl fmt::Write, value: &Value) -> fmt::Result {
    match value.kind() {
        ValueKind::Undefined => Ok(()),
        ValueKind::None => out.write_str("None"),
        ValueKind::Bool if value.is_true() => out.write_str("True"),
        ValueKind::Bool => out.write_str("False"),
        _ => match value.as_str() {
            Some(s) => out.write_str(s),
            None => write!(out, "{value}"),
        },
    }
}

/// The budget of the render `state` belongs to.
pub(crate) fn budget(state: &State) -> Result<Arc<Budget>, Error> {
    state
        .lookup(BUDGET_VAR)
        .and_then(|v| v.downcast_object::<Budget>())
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "render budget is missing"))
}

/// An environment without guards, used to run an operation once its
/// inputs have been checked so semantics stay exactly minijinja's.
fn raw_env() -> &'static Environment<'static> {
    static RAW: OnceLock<Environment<'static>> = OnceLock::new();
    RAW.get_or_init(Environment::new)
}

fn raw_binop(op: &'static str, a: Value, b: Value) -> Result<Value, Error> {
    static ADD: OnceLock<Option<Expression<'static, 'static>>> = OnceLock::new();
    static MUL: OnceLock<Option<Expression<'static, 'static>>> = OnceLock::new();
    let (cell, source) = match op {
        "+" => (&ADD, "a + b"),
        _ => (&MUL, "a * b"),
    };
    let expr = cell
        .get_or_init(|| raw_env().compile_expression(source).ok())
        .as_ref()
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "internal operator failed to compile"))?;
    expr.eval(Value::from_iter([("a", a), ("b", b)]))
}

fn is_seq(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
}

fn charge_fn(state: &State, value: Value) -> Result<Value, Error> {
    budget(state)?.charge(&value)?;
    Ok(value)
}

fn concat_fn(state: &State, a: Value, b: Value) -> Result<Value, Error> {
    let budget = budget(state)?;
    let cap = budget.limits().max_string_bytes;
    let mut out = Bounded::new(cap);
    if write_py_str(&mut out, &a).is_err() || write_py_str(&mut out, &b).is_err() {
        return Err(budget.trip(TemplateError::over("max_string_bytes", out.attempted, cap)));
    }
    let value = Value::from(out.buf);
    budget.charge(&value)?;
    Ok(value)
}

fn add_fn(state: &State, a: Value, b: Value) -> Result<Value, Error> {
    let budget = budget(state)?;
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        // The common case in chat templates; no need to go through the VM.
        budget.check_string(x.len().saturating_add(y.len()))?;
        let value = Value::from([x, y].concat());
        budget.charge(&value)?;
        return Ok(value);
    }
    if is_seq(&a) && is_seq(&b) {
        let total = budget.count_items(&a)?.saturating_add(budget.count_items(&b)?);
        budget.check_items(total)?;
    }
    let value = raw_binop("+", a, b)?;
    budget.charge(&value)?;
    Ok(value)
}

fn mul_fn(state: &State, a: Value, b: Value) -> Result<Value, Error> {
    let budget = budget(state)?;
    for (x, n) in [(&a, &b), (&b, &a)] {
        let times = n.as_i64().map_or(0, |n| usize::try_from(n).unwrap_or(0));
        if let Some(s) = x.as_str() {
            budget.check_string(s.len().saturating_mul(times))?;
        } else if is_seq(x) && n.kind() == ValueKind::Number {
            budget.check_items(budget.count_items(x)?.saturating_mul(times))?;
        }
    }
    let value = raw_binop("*", a, b)?;
    budget.charge(&value)?;
    Ok(value)
}

/// Output goes through here (raw text too, see `rewrite`), so it is counted.
fn format_output(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    let budget = budget(state)?;
    if let Some(s) = value.as_str() {
        budget.add_output(s.len())?;
        return out.write_str(s).map_err(write_error);
    }
    let text = budget.py_str(value, budget.remaining_output(), "max_output_bytes")?;
    budget.add_output(text.len())?;
    out.write_str(&text).map_err(write_error)
}

fn write_error(_: fmt::Error) -> Error {
    Error::new(ErrorKind::WriteFailure, "could not write output")
}

/// Registers the checked operations and the output formatter.
pub(crate) fn install(env: &mut Environment<'static>) {
    env.add_function(CHARGE_FN, charge_fn);
    env.add_function(CONCAT_FN, concat_fn);
    env.add_function(ADD_FN, add_fn);
    env.add_function(MUL_FN, mul_fn);
    env.set_formatter(format_output);
}
