//! The untyped tree the parser builds: junctions, symbol comparisons and chains of calls with
//! their arguments, every piece with its position. It knows the shape of the language but not
//! what each function accepts; the checker (`check.rs`) lowers it to the typed [`super::ast`],
//! so the messages about types and arguments live in one place.

use super::error::Pos;

#[derive(Clone, Debug)]
pub(crate) enum Expr {
    /// `a AND b AND c` or `a OR b`: two or more parts.
    Junction {
        op: JunctionOp,
        parts: Vec<Expr>,
        /// The first `AND`/`OR`, for messages.
        keyword: Found,
    },
    /// `NOT x`, `ANY x`, `ALL x`.
    Prefix {
        op: PrefixOp,
        pos: Pos,
        operand: Box<Expr>,
    },
    /// `left <symbol> right`, such as `trait('a') >= 3`.
    Compare {
        left: Box<Chain>,
        symbol: Symbol,
        /// The symbol as written, with its position.
        symbol_found: Found,
        right: Box<Chain>,
    },
    Chain(Chain),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JunctionOp {
    And,
    Or,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrefixOp {
    Not,
    Any,
    All,
}

/// The comparison symbols, named for the comparator they stand for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Symbol {
    Equals,
    Differs,
    GreaterThan,
    AtLeast,
    LessThan,
    AtMost,
}

impl Symbol {
    pub fn from_text(text: &str) -> Option<Symbol> {
        Some(match text {
            "=" | "==" => Symbol::Equals,
            "!=" => Symbol::Differs,
            ">" => Symbol::GreaterThan,
            ">=" => Symbol::AtLeast,
            "<" => Symbol::LessThan,
            "<=" => Symbol::AtMost,
            _ => return None,
        })
    }
}

/// `head.call().call()…`: an extractor (or a bare value) and the calls chained on it.
#[derive(Clone, Debug)]
pub(crate) struct Chain {
    pub head: Head,
    pub calls: Vec<Call>,
    /// The chain's source text, to name it in messages.
    pub text: String,
    /// The token right after the chain, for "expected …, found …" messages.
    pub next: Found,
}

#[derive(Clone, Debug)]
pub(crate) enum Head {
    Call(Call),
    Value(Value, Pos),
}

/// A bare value: `'pro'`, `3`, `-2.5`, `true`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Integer(i64),
    Decimal(f64),
    Bool(bool),
}

/// `name(args)`; `name` is lower-cased (function names are case-insensitive).
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub name: String,
    pub pos: Pos,
    pub args: Vec<Arg>,
    /// Where the closing `)` is: the position of an error about a missing argument.
    pub close: Pos,
}

/// One argument: `[label:] value [as type]`.
#[derive(Clone, Debug)]
pub(crate) struct Arg {
    pub pos: Pos,
    /// `parent:` or `exclude:`, lower-cased.
    pub label: Option<Word>,
    pub value: ArgValue,
    pub as_type: Option<Word>,
    /// The argument's source text, to name it in messages.
    pub text: String,
}

#[derive(Clone, Debug)]
pub(crate) enum ArgValue {
    /// A number followed by a word: `7 days`.
    Quantity {
        amount: Value,
        unit: Word,
    },
    Expr(Expr),
}

/// A word with its position; `text` is lower-cased.
#[derive(Clone, Debug)]
pub(crate) struct Word {
    pub text: String,
    pub pos: Pos,
}

/// A token named for a message: `')'`, `end of input`.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub pos: Pos,
    pub what: String,
}

impl Expr {
    /// Where the expression starts.
    pub fn pos(&self) -> Pos {
        match self {
            Expr::Junction { parts, .. } => parts[0].pos(),
            Expr::Prefix { pos, .. } => *pos,
            Expr::Compare { left, .. } => left.pos(),
            Expr::Chain(chain) => chain.pos(),
        }
    }
}

impl Chain {
    pub fn pos(&self) -> Pos {
        match &self.head {
            Head::Call(call) => call.pos,
            Head::Value(_, pos) => *pos,
        }
    }
}

/// Source text for a message, shortened when long.
pub(crate) fn quote_source(text: &str) -> String {
    const LONGEST: usize = 40;
    if text.chars().count() > LONGEST {
        let head: String = text.chars().take(LONGEST).collect();
        format!("{head}…")
    } else {
        text.to_string()
    }
}
