//! The audience and computed-trait query language (Segment's; see `QUERY_LANGUAGE.md`):
//! text in, a checked, typed [`Definition`] out, or the first error with its line and column.
//!
//! ```text
//! text ─lexer─▶ tokens (with positions) ─parser─▶ syntax tree (untyped calls, positions)
//!      ─check─▶ ast::Definition (typed, no positions) ─render─▶ canonical text
//! ```
//! Invariants:
//! - nothing half-valid leaves this module: [`parse`] returns a definition that passed every
//!   check, or an error (the first one, reading left to right);
//! - every error's position lies inside the text (see [`QueryError`]);
//! - `parse(render(d)) == d` for every checked definition `d` (same kind and expectation);
//! - no input makes it panic or recurse without bound (nesting is capped by the parser).
//!
//! Words (function names, `AND`/`OR`/`NOT`/`ANY`/`ALL`, units, `as` types, `true`/`false`)
//! are case-insensitive. Additions to Segment's reference, all documented where they are read:
//! `true`/`false` literals (boolean traits such as audience memberships), bare dates
//! (`'2024-05-01'`, midnight UTC) in `before_date`/`after_date`, and braces around an argument
//! list as in the reference's `sources({exclude: …})` example.

mod args;
pub mod ast;
mod chain;
mod check;
mod error;
mod lexer;
mod parser;
mod render;
mod syntax;

#[cfg(test)]
mod tests;

pub use ast::*;
pub use error::QueryError;
pub use render::{render, render_condition, render_scalar};

/// What a definition must compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expect {
    /// A condition: every expression ends in a comparator.
    Audience,
    /// A value: an expression with no comparator, such as `event('X').count()`.
    ComputedTrait,
}

/// Parses and checks a definition of the given kind that must compute `expect`.
pub fn parse(text: &str, kind: Kind, expect: Expect) -> Result<Definition, QueryError> {
    let expr = parser::parse(text)?;
    check::check(&expr, kind, expect)
}

/// Parses and checks an audience definition.
pub fn parse_audience(text: &str, kind: Kind) -> Result<Definition, QueryError> {
    parse(text, kind, Expect::Audience)
}

/// Parses and checks a computed-trait definition.
pub fn parse_computed_trait(text: &str, kind: Kind) -> Result<Definition, QueryError> {
    parse(text, kind, Expect::ComputedTrait)
}
