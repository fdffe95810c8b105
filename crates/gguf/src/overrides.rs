//! Metadata overrides in llama.cpp's `KEY=TYPE:VALUE` form.

use crate::error::OverrideError;
use crate::types::Value;

/// llama.cpp keeps override keys and string values in 128-byte buffers
/// including the NUL terminator.
const MAX_LEN: usize = 127;

/// One metadata override, applied over the file's metadata before validation
/// and passed on to llama.cpp.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaOverride {
    pub key: String,
    pub value: OverrideValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OverrideValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl OverrideValue {
    /// The metadata value the override stands for.
    pub fn to_value(&self) -> Value {
        match self {
            OverrideValue::Int(v) => Value::I64(*v),
            OverrideValue::Float(v) => Value::F64(*v),
            OverrideValue::Bool(v) => Value::Bool(*v),
            OverrideValue::Str(s) => Value::String(s.clone()),
        }
    }
}

impl MetaOverride {
    /// Parses `key=int:4`, `key=float:0.5`, `key=bool:true` or `key=str:text`.
    pub fn parse(input: &str) -> Result<MetaOverride, OverrideError> {
        let syntax = || OverrideError::Syntax { input: input.to_string() };
        let (key, rest) = input.split_once('=').ok_or_else(syntax)?;
        let (ty, raw) = rest.split_once(':').ok_or_else(syntax)?;
        check_key(key)?;
        let value = parse_value(key, ty, raw)?;
        Ok(MetaOverride { key: key.to_string(), value })
    }
}

fn check_key(key: &str) -> Result<(), OverrideError> {
    let reason = if key.is_empty() {
        "key is empty"
    } else if key.len() > MAX_LEN {
        "key must be shorter than 128 bytes"
    } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
        "key must be printable ASCII without spaces"
    } else {
        return Ok(());
    };
    Err(OverrideError::BadKey { key: key.to_string(), reason })
}

fn parse_value(key: &str, ty: &str, raw: &str) -> Result<OverrideValue, OverrideError> {
    let bad = |ty: &'static str, reason: &'static str| OverrideError::BadValue {
        key: key.to_string(),
        ty,
        value: raw.to_string(),
        reason,
    };
    match ty {
        "int" => raw.parse().map(OverrideValue::Int).map_err(|_| bad("int", "expected a 64-bit signed integer")),
        "float" => match raw.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(OverrideValue::Float(v)),
            _ => Err(bad("float", "expected a finite number")),
        },
        "bool" => match raw {
            "true" => Ok(OverrideValue::Bool(true)),
            "false" => Ok(OverrideValue::Bool(false)),
            _ => Err(bad("bool", "expected true or false")),
        },
        "str" => parse_str(raw).map_err(|reason| bad("str", reason)),
        _ => Err(OverrideError::UnknownType { key: key.to_string(), ty: ty.to_string() }),
    }
}

fn parse_str(raw: &str) -> Result<OverrideValue, &'static str> {
    if raw.len() > MAX_LEN {
        return Err("string must be shorter than 128 bytes");
    }
    if !raw.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err("string must be printable ASCII");
    }
    Ok(OverrideValue::Str(raw.to_string()))
}
