//! The type checker: lowers the untyped syntax tree to the typed [`ast`](super::ast), refusing
//! at the first error with its position and what was expected.
//!
//! This module owns the rules about where things may appear (call chains are typed in
//! `chain.rs`, arguments read in `args.rs`):
//! - an audience is a condition (every chain in it ends in a comparator); a computed trait is a
//!   value (a chain with no comparator); an event stream is reduced before it is compared;
//! - `property`/`context` only where an event is in scope ([`Scope::events`] ≥ 1: inside
//!   `where(...)` or a reducer's argument), `property(parent: …)` and `within(parent: …)` only
//!   where an enclosing event exists as well;
//! - `ANY`/`ALL` only in `ACCOUNTS` audiences, outside `where(...)`, not inside each other;
//! - at most [`MAX_PRIMARY_EXPRESSIONS`] primary expressions, counted as
//!   [`Definition::primary_expressions`] counts them; the error points at the first one over.

use super::ast::{Body, Comparator, Comparison, Condition, Definition, Kind, Scalar, MAX_PRIMARY_EXPRESSIONS};
use super::chain::Typed;
use super::error::{Pos, QueryError};
use super::syntax::{quote_source, Chain, Expr, JunctionOp, PrefixOp, Symbol};
use super::Expect;

/// Lowers a parsed expression to a checked definition.
pub(crate) fn check(expr: &Expr, kind: Kind, expect: Expect) -> Result<Definition, QueryError> {
    let mut checker = Checker { kind, primaries: 0 };
    let top = Scope {
        events: 0,
        aggregate: kind == Kind::Accounts,
    };
    let body = match expect {
        Expect::Audience => Body::Audience(checker.condition(expr, top)?),
        Expect::ComputedTrait => Body::ComputedTrait(checker.computed_trait(expr, top)?),
    };
    Ok(Definition { kind, body })
}

pub(crate) struct Checker {
    kind: Kind,
    /// Primary expressions seen so far.
    primaries: usize,
}

/// What surrounds the expression being checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope {
    /// How many events are in scope: 0 at the top; 1 inside `event('A').where(…)` or a
    /// reducer's argument (the event of A); 2 inside a stream nested there (its event and the
    /// enclosing A, its parent); and so on.
    pub events: u32,
    /// True where `ANY`/`ALL` may appear.
    pub aggregate: bool,
}

impl Scope {
    /// Inside `where(...)` or a reducer's argument: one more event in scope, no `ANY`/`ALL`.
    pub fn inside_event(self) -> Scope {
        Scope {
            events: self.events + 1,
            aggregate: false,
        }
    }
}

impl Checker {
    /// Counts one primary expression (an `event`, `trait`, `property` or `context` call).
    pub(crate) fn count_primary(&mut self, pos: Pos) -> Result<(), QueryError> {
        self.primaries += 1;
        if self.primaries > MAX_PRIMARY_EXPRESSIONS {
            return Err(QueryError::at(
                pos,
                format!(
                    "too many expressions: a definition holds at most {MAX_PRIMARY_EXPRESSIONS} primary expressions \
                     (event, trait, property and context calls), and this is number {}",
                    self.primaries
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn condition(&mut self, expr: &Expr, scope: Scope) -> Result<Condition, QueryError> {
        match expr {
            Expr::Junction { op, parts, .. } => {
                let parts = parts
                    .iter()
                    .map(|part| self.condition(part, scope))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(match op {
                    JunctionOp::And => Condition::And(parts),
                    JunctionOp::Or => Condition::Or(parts),
                })
            }
            Expr::Prefix {
                op: PrefixOp::Not,
                operand,
                ..
            } => Ok(Condition::Not(Box::new(self.condition(operand, scope)?))),
            Expr::Prefix { op, pos, operand } => {
                let word = if *op == PrefixOp::Any { "ANY" } else { "ALL" };
                self.check_aggregate(word, *pos, scope)?;
                let inner = Box::new(self.condition(operand, Scope { aggregate: false, ..scope })?);
                Ok(if *op == PrefixOp::Any {
                    Condition::Any(inner)
                } else {
                    Condition::All(inner)
                })
            }
            Expr::Compare {
                left,
                symbol,
                symbol_found,
                right,
            } => {
                let subject = match self.chain(left, scope)? {
                    Typed::Value(value) => value,
                    other => {
                        let why = other.why_not_comparable(&left.text);
                        return Err(QueryError::at(
                            symbol_found.pos,
                            format!("{why}; found {}", symbol_found.what),
                        ));
                    }
                };
                let operand = self.operand_chain(right, scope)?;
                let comparator = match symbol {
                    Symbol::Equals => Comparator::Equals(operand),
                    Symbol::Differs => Comparator::Differs(operand),
                    Symbol::GreaterThan => Comparator::GreaterThan(operand),
                    Symbol::AtLeast => Comparator::AtLeast(operand),
                    Symbol::LessThan => Comparator::LessThan(operand),
                    Symbol::AtMost => Comparator::AtMost(operand),
                };
                Ok(Condition::Compare(Comparison { subject, comparator }))
            }
            Expr::Chain(chain) => match self.chain(chain, scope)? {
                Typed::Boolean(comparison) => Ok(Condition::Compare(comparison)),
                Typed::Stream(_) => Err(QueryError::at(
                    chain.next.pos,
                    format!(
                        "expected a reducer and a comparator after the event stream {}, such as .count() >= 1, found {}",
                        quote_source(&chain.text),
                        chain.next.what
                    ),
                )),
                Typed::Value(_) | Typed::List(..) => Err(QueryError::at(
                    chain.next.pos,
                    format!(
                        "expected a comparator such as >= or .at_least(...), found {}",
                        chain.next.what
                    ),
                )),
            },
        }
    }

    /// Refuses `ANY`/`ALL` where they mean nothing.
    fn check_aggregate(&self, word: &str, pos: Pos, scope: Scope) -> Result<(), QueryError> {
        let why = if self.kind == Kind::Users {
            "is only for ACCOUNTS definitions (it aggregates over an account's users); this is a USERS definition"
        } else if scope.events > 0 {
            "cannot appear inside where(...) or a reducer: it aggregates over an account's users, \
             while where(...) tests one event"
        } else if !scope.aggregate {
            "cannot be nested inside ANY or ALL: the inner condition is already about one user"
        } else {
            return Ok(());
        };
        Err(QueryError::at(pos, format!("{word} {why}")))
    }

    /// The body of a computed trait: a value, which may be a list (`unique(...)`).
    fn computed_trait(&mut self, expr: &Expr, scope: Scope) -> Result<Scalar, QueryError> {
        let not_a_value = |pos: Pos, found: &str| {
            QueryError::at(
                pos,
                format!(
                    "a computed trait ends in a value, such as event('X').within(30 days).avg(property('spend')), \
                     not a condition; found {found}"
                ),
            )
        };
        match expr {
            Expr::Chain(chain) => match self.chain(chain, scope)? {
                typed @ (Typed::Value(_) | Typed::List(..)) => Ok(typed.into_value().expect("a value or a list")),
                Typed::Stream(_) => Err(self.unreduced(chain)),
                Typed::Boolean(_) => {
                    let comparator = chain.calls.last().expect("a comparator is a call");
                    Err(not_a_value(
                        comparator.pos,
                        &format!("the comparator {}(...)", comparator.name),
                    ))
                }
            },
            Expr::Compare { symbol_found, .. } => Err(not_a_value(symbol_found.pos, &symbol_found.what)),
            Expr::Junction { keyword, .. } => Err(not_a_value(keyword.pos, &keyword.what)),
            Expr::Prefix { op, pos, .. } => {
                let word = match op {
                    PrefixOp::Not => "'NOT'",
                    PrefixOp::Any => "'ANY'",
                    PrefixOp::All => "'ALL'",
                };
                Err(not_a_value(*pos, word))
            }
        }
    }

    /// A value compared against (right of a symbol, or a comparator's argument).
    pub(crate) fn operand(&mut self, expr: &Expr, scope: Scope) -> Result<Scalar, QueryError> {
        match expr {
            Expr::Chain(chain) => self.operand_chain(chain, scope),
            other => Err(QueryError::at(
                other.pos(),
                "expected a value to compare with, such as 5, 'text' or trait('name'), found a condition",
            )),
        }
    }

    fn operand_chain(&mut self, chain: &Chain, scope: Scope) -> Result<Scalar, QueryError> {
        match self.chain(chain, scope)? {
            Typed::Value(value) => Ok(value),
            Typed::Stream(_) => Err(self.unreduced(chain)),
            Typed::List(..) => Err(QueryError::at(
                chain.next.pos,
                format!(
                    "expected .count() after unique(...): a list cannot be compared, found {}",
                    chain.next.what
                ),
            )),
            Typed::Boolean(_) => Err(QueryError::at(
                chain.pos(),
                format!(
                    "expected a value to compare with, found the condition {}",
                    quote_source(&chain.text)
                ),
            )),
        }
    }

    fn unreduced(&self, chain: &Chain) -> QueryError {
        QueryError::at(
            chain.next.pos,
            format!(
                "expected a reducer such as .count() or .sum(property('p')) after the event stream {}, found {}",
                quote_source(&chain.text),
                chain.next.what
            ),
        )
    }
}
