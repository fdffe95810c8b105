//! Bounds minijinja's compile-time constant folding.
//!
//! The code generator evaluates constant subexpressions while compiling, so
//! `{{ 'a' * 99999999 ~ 'a' * 99999999 ~ ... }}` would allocate before any
//! runtime check could run (folding has its own cap of 100 MB per
//! repetition, but nothing bounds a tree of them). This read-only walk
//! estimates, without allocating, the size and copying cost of every
//! foldable subtree and rejects the template if either is too large.

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
use minijinja::value::Value;

use crate::{Limits, TemplateError};

/// Bytes charged per list item or map entry.
const ITEM_BYTES: u64 = 24;
/// The size of a folded number, boolean or number-to-text conversion.
const SCALAR_BYTES: u64 = 40;

struct FoldCheck<'l> {
    limits: &'l Limits,
    total: u64,
}

/// Fails if constant folding while compiling `ast` could exceed the limits.
pub(crate) fn check_folding(ast: &Stmt<'_>, limits: &Limits) -> Result<(), TemplateError> {
    let mut check = FoldCheck { limits, total: 0 };
    check.stmt(ast)
}

fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn narrow(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl FoldCheck<'_> {
    fn stmts(&mut self, body: &[Stmt<'_>]) -> Result<(), TemplateError> {
        body.iter().try_for_each(|s| self.stmt(s))
    }

    fn stmt(&mut self, stmt: &Stmt<'_>) -> Result<(), TemplateError> {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr, 1),
            Stmt::ForLoop(f) => {
                self.exprs([&f.target, &f.iter].into_iter().chain(&f.filter_expr))?;
                self.stmts(&f.body)?;
                self.stmts(&f.else_body)
            }
            Stmt::IfCond(c) => {
                self.expr(&c.expr, 1)?;
                self.stmts(&c.true_body)?;
                self.stmts(&c.false_body)
            }
            Stmt::WithBlock(w) => {
                self.exprs(w.assignments.iter().flat_map(|(a, b)| [a, b]))?;
                self.stmts(&w.body)
            }
            Stmt::Set(s) => self.exprs([&s.target, &s.expr]),
            Stmt::SetBlock(s) => {
                self.exprs([&s.target].into_iter().chain(&s.filter))?;
                self.stmts(&s.body)
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled, 1)?;
                self.stmts(&a.body)
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter, 1)?;
                self.stmts(&f.body)
            }
            Stmt::Block(b) => self.stmts(&b.body),
            Stmt::Import(i) => self.exprs([&i.expr, &i.name]),
            Stmt::FromImport(i) => self.expr(&i.expr, 1),
            Stmt::Extends(e) => self.expr(&e.name, 1),
            Stmt::Include(i) => self.expr(&i.name, 1),
            Stmt::Macro(m) => {
                self.exprs(m.args.iter().chain(&m.defaults))?;
                self.stmts(&m.body)
            }
            Stmt::CallBlock(c) => {
                self.expr(&c.call.expr, 1)?;
                self.args(&c.call.args, 1)?;
                self.exprs(c.macro_decl.args.iter().chain(&c.macro_decl.defaults))?;
                self.stmts(&c.macro_decl.body)
            }
            Stmt::Do(d) => {
                self.expr(&d.call.expr, 1)?;
                self.args(&d.call.args, 1)
            }
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => Ok(()),
        }
    }

    fn exprs<'a, 's: 'a>(&mut self, exprs: impl IntoIterator<Item = &'a Expr<'s>>) -> Result<(), TemplateError> {
        exprs.into_iter().try_for_each(|e| self.expr(e, 1))
    }

    fn args(&mut self, args: &[CallArg<'_>], evals: u64) -> Result<(), TemplateError> {
        args.iter().try_for_each(|arg| match arg {
            CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                self.expr(e, evals)
            }
        })
    }

    /// `evals` approximates how often the code generator folds this node:
    /// once per enclosing expression node, each of which tries to fold.
    fn expr(&mut self, expr: &Expr<'_>, evals: u64) -> Result<(), TemplateError> {
        if let Some((_, cost)) = self.estimate(expr)? {
            return self.charge(cost.saturating_mul(evals));
        }
        let next = evals.saturating_add(1);
        match expr {
            Expr::Slice(s) => {
                self.expr(&s.expr, next)?;
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part, next)?;
                }
                Ok(())
            }
            Expr::UnaryOp(u) => self.expr(&u.expr, next),
            Expr::BinOp(b) => {
                self.expr(&b.left, next)?;
                self.expr(&b.right, next)
            }
            Expr::Compare(c) => {
                self.expr(&c.expr, next)?;
                c.ops.iter().try_for_each(|op| self.expr(&op.expr, next))
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr, next)?;
                self.expr(&i.true_expr, next)?;
                i.false_expr.iter().try_for_each(|e| self.expr(e, next))
            }
            Expr::Filter(f) => {
                f.expr.iter().try_for_each(|e| self.expr(e, next))?;
                self.args(&f.args, next)
            }
            Expr::Test(t) => {
                self.expr(&t.expr, next)?;
                self.args(&t.args, next)
            }
            Expr::GetAttr(g) => self.expr(&g.expr, next),
            Expr::GetItem(g) => {
                self.expr(&g.expr, next)?;
                self.expr(&g.subscript_expr, next)
            }
            Expr::Call(c) => {
                self.expr(&c.expr, next)?;
                self.args(&c.args, next)
            }
            Expr::List(l) => l.items.iter().try_for_each(|e| self.expr(e, next)),
            Expr::Map(m) => m.keys.iter().chain(&m.values).try_for_each(|e| self.expr(e, next)),
            Expr::Var(_) | Expr::Const(_) => Ok(()),
        }
    }

    fn charge(&mut self, cost: u64) -> Result<(), TemplateError> {
        self.total = self.total.saturating_add(cost);
        let max = wide(self.limits.max_alloc_bytes);
        if self.total > max {
            return Err(TemplateError::over("max_alloc_bytes", narrow(self.total), narrow(max)));
        }
        Ok(())
    }

    /// For a subtree minijinja would fold: (size of the result, bytes
    /// allocated while folding it). `None` if it is not foldable.
    fn estimate(&self, expr: &Expr<'_>) -> Result<Option<(u64, u64)>, TemplateError> {
        let (size, cost) = match expr {
            Expr::Const(c) => (value_size(&c.value), 0),
            Expr::List(l) if l.items.iter().all(|e| matches!(e, Expr::Const(_))) => {
                let size = l.items.len() as u64 * ITEM_BYTES;
                (size, size)
            }
            Expr::Map(m) if m.keys.iter().chain(&m.values).all(|e| matches!(e, Expr::Const(_))) => {
                let size = m.keys.len() as u64 * ITEM_BYTES;
                (size, size)
            }
            Expr::UnaryOp(u) => match self.estimate(&u.expr)? {
                Some((_, cost)) => (SCALAR_BYTES, cost),
                None => return Ok(None),
            },
            Expr::Compare(c) => {
                let mut cost = 0u64;
                for part in std::iter::once(&c.expr).chain(c.ops.iter().map(|op| &op.expr)) {
                    let Some((_, part_cost)) = self.estimate(part)? else {
                        return Ok(None);
                    };
                    cost = cost.saturating_add(part_cost);
                }
                (SCALAR_BYTES, cost)
            }
            Expr::BinOp(b) => {
                let (Some(left), Some(right)) = (self.estimate(&b.left)?, self.estimate(&b.right)?) else {
                    return Ok(None);
                };
                let size = match b.op {
                    BinOpKind::Mul => left
                        .0
                        .saturating_mul(factor(&b.right, right.0))
                        .saturating_add(right.0.saturating_mul(factor(&b.left, left.0))),
                    _ => left.0.saturating_add(right.0).saturating_add(SCALAR_BYTES),
                };
                let max = wide(self.limits.max_string_bytes);
                if size > max {
                    return Err(TemplateError::over("max_string_bytes", narrow(size), narrow(max)));
                }
                (size, size.saturating_add(left.1).saturating_add(right.1))
            }
            _ => return Ok(None),
        };
        Ok(Some((size, cost)))
    }
}

fn value_size(value: &Value) -> u64 {
    match (value.as_str(), value.len()) {
        (Some(s), _) => wide(s.len()),
        (None, Some(n)) => wide(n).saturating_mul(ITEM_BYTES),
        (None, None) => SCALAR_BYTES,
    }
}

/// How many times a repetition by `expr` could copy its other operand: the
/// number itself when `expr` is plain arithmetic (cheap and safe to fold
/// here), otherwise its size as a conservative stand-in.
fn factor(expr: &Expr<'_>, size: u64) -> u64 {
    if !is_numeric(expr) {
        return size.max(1);
    }
    match expr.as_const() {
        Some(v) => v
            .as_i64()
            .map(|n| u64::try_from(n).unwrap_or(0))
            .or_else(|| f64::try_from(v).ok().map(|f| if f > 0.0 { f as u64 } else { 0 }))
            .unwrap_or(u64::MAX)
            .max(1),
        None => 1,
    }
}

/// Arithmetic on number literals only: folding it never allocates.
fn is_numeric(expr: &Expr<'_>) -> bool {
    match expr {
        Expr::Const(c) => c.value.is_number(),
        Expr::UnaryOp(u) => is_numeric(&u.expr),
        Expr::BinOp(b) => is_numeric(&b.left) && is_numeric(&b.right),
        _ => false,
    }
}
