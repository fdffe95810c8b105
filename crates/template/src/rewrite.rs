//! Rewrites compiled bytecode so that every operation able to allocate
//! without bound goes through a checked function first.
//!
//! minijinja has no hooks for its operators, output writes or raw text, so
//! the instructions are edited instead: risky operators are replaced by
//! calls of the same stack shape, and a charge call is inserted after every
//! value-producing instruction. Jump targets are remapped afterwards.

use minijinja::machinery::{Instruction, Instructions};
use minijinja::value::Value;

use crate::guard::{ADD_FN, CHARGE_FN, CONCAT_FN, MUL_FN};

use crate::TemplateError;

/// Returns a guarded copy of `old`.
pub(crate) fn guard_instructions<'s>(old: &Instructions<'s>) -> Result<Instructions<'s>, TemplateError> {
    let len = old.len();
    let mut new = Instructions::new(old.name(), old.source());
    let mut map = Vec::with_capacity(len + 1);
    for idx in 0..len {
        let at = u32::try_from(idx).map_err(|_| too_long(idx))?;
        map.push(new.len());
        let Some(instr) = old.get(at) else {
            return Err(too_long(idx));
        };
        for replacement in expand(instr)? {
            push(&mut new, old, at, replacement);
        }
    }
    map.push(new.len());
    remap_jumps(&mut new, &map)
}

fn too_long(idx: usize) -> TemplateError {
    TemplateError::over("instructions", idx, u32::MAX as usize)
}

fn push<'s>(new: &mut Instructions<'s>, old: &Instructions<'s>, at: u32, instr: Instruction<'s>) {
    match old.get_span(at) {
        Some(span) => new.add_with_span(instr, span),
        None => new.add_with_line(instr, old.get_line(at).unwrap_or(0) as u16),
    };
}

fn charge<'s>() -> Instruction<'s> {
    Instruction::CallFunction(CHARGE_FN, Some(1))
}

/// The replacement sequence for one instruction.
fn expand<'s>(instr: &Instruction<'s>) -> Result<Vec<Instruction<'s>>, TemplateError> {
    use Instruction as I;
    Ok(match instr {
        // Raw text goes through the formatter so output is counted.
        I::EmitRaw(text) => vec![I::LoadConst(Value::from(*text)), I::Emit],
        I::StringConcat => vec![I::CallFunction(CONCAT_FN, Some(2))],
        I::Add => vec![I::CallFunction(ADD_FN, Some(2))],
        I::Mul => vec![I::CallFunction(MUL_FN, Some(2))],
        // Producers whose result is bounded by their (already bounded)
        // inputs times a constant: charge after the fact.
        I::Slice
        | I::Pow
        | I::ApplyFilter(..)
        | I::CallMethod(..)
        | I::CallObject(..)
        | I::BuildList(..)
        | I::Iterate(..) => vec![instr.clone(), charge()],
        I::CallFunction(name, _) if !name.starts_with("__augur_") => vec![instr.clone(), charge()],
        _ => vec![instr.clone()],
    })
}

fn remap_jumps<'s>(new: &mut Instructions<'s>, map: &[usize]) -> Result<Instructions<'s>, TemplateError> {
    let target = |old: &u32| -> Result<u32, TemplateError> {
        let idx = *old as usize;
        let mapped = *map.get(idx).ok_or_else(|| too_long(idx))?;
        u32::try_from(mapped).map_err(|_| too_long(mapped))
    };
    for idx in 0..new.len() {
        let at = u32::try_from(idx).map_err(|_| too_long(idx))?;
        let Some(instr) = new.get_mut(at) else {
            continue;
        };
        match instr {
            Instruction::Jump(t)
            | Instruction::JumpIfFalse(t)
            | Instruction::JumpIfFalseOrPop(t)
            | Instruction::JumpIfTrueOrPop(t)
            | Instruction::Iterate(t)
            | Instruction::BuildMacro(_, t, _) => *t = target(t)?,
            _ => {}
        }
    }
    Ok(std::mem::replace(new, Instructions::new("", "")))
}
