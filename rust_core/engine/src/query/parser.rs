//! Tokens → the untyped [`syntax`](super::syntax) tree, by recursive descent.
//!
//! Hand-written rather than generated (pest, lalrpop, nom): the grammar is a dozen rules, and
//! the point of this module is its error messages, each naming what was found and what was
//! expected at that exact token, which generated parsers make hard to word well.
//!
//! Grammar (words are case-insensitive; `NOT` binds tighter than `AND`, `AND` than `OR`):
//! ```text
//! expr     := and_expr ( OR and_expr )*
//! and_expr := unary ( AND unary )*
//! unary    := ( NOT | ANY | ALL ) unary | '(' expr ')' | operand
//! operand  := chain [ symbol chain ]           symbol: = == != > >= < <=
//! chain    := head ( '.' call )*
//! head     := call | string | number | true | false
//! call     := word '(' [ '{' ] [ arg ( ',' arg )* ] [ '}' ] ')'
//! arg      := [ word ':' ] ( number word | expr ) [ AS word ]
//! ```
//! Braces around an argument list are accepted because Segment's reference writes its example
//! that way (`sources({exclude: 'a', 'b'})`); they change nothing.
//!
//! Invariant: nesting (parentheses, prefixes and calls) is at most [`MAX_NESTING`] deep, so
//! neither this parser nor the checker and renderer that recurse over its tree can exhaust the
//! stack, whatever the input.

use super::error::QueryError;
use super::lexer::{tokenize, Token, TokenKind};
use super::syntax::{Arg, ArgValue, Call, Chain, Expr, Found, Head, JunctionOp, PrefixOp, Symbol, Value, Word};

/// The deepest nesting accepted; real definitions stay under ten.
pub(crate) const MAX_NESTING: usize = 32;

/// Parses a whole text as one expression.
pub(crate) fn parse(text: &str) -> Result<Expr, QueryError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        source: text,
        tokens,
        at: 0,
        depth: 0,
    };
    if parser.peek().kind == TokenKind::End {
        return Err(QueryError::at(
            parser.peek().pos,
            "empty definition: expected an expression such as event('Name').count() >= 1",
        ));
    }
    let expr = parser.expr()?;
    let next = parser.peek();
    if next.kind != TokenKind::End {
        return Err(QueryError::at(
            next.pos,
            format!(
                "expected AND, OR or the end of the definition, found {}",
                next.describe()
            ),
        ));
    }
    Ok(expr)
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token<'a>>,
    /// Index of the next token; the last token is `End` and is never passed.
    at: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token<'a> {
        &self.tokens[self.at]
    }

    fn peek_second(&self) -> &Token<'a> {
        &self.tokens[(self.at + 1).min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token<'a> {
        let token = self.tokens[self.at].clone();
        if token.kind != TokenKind::End {
            self.at += 1;
        }
        token
    }

    fn found(&self) -> Found {
        Found {
            pos: self.peek().pos,
            what: self.peek().describe(),
        }
    }

    fn error_here(&self, expected: &str) -> QueryError {
        QueryError::at(
            self.peek().pos,
            format!("expected {expected}, found {}", self.peek().describe()),
        )
    }

    fn expect(&mut self, kind: TokenKind, expected: &str) -> Result<Token<'a>, QueryError> {
        if self.peek().kind == kind {
            Ok(self.advance())
        } else {
            Err(self.error_here(expected))
        }
    }

    /// Source text from the token at `first` up to the last token read.
    fn source_since(&self, first: usize) -> String {
        let start = self.tokens[first].start;
        let last = &self.tokens[self.at.saturating_sub(1).max(first)];
        self.source[start..last.start + last.text.len()].to_string()
    }

    /// One level deeper, opened by the token at `pos`.
    fn enter(&mut self, pos: super::error::Pos) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(QueryError::at(
                pos,
                format!("nesting deeper than {MAX_NESTING} levels (parentheses, NOT/ANY/ALL, calls): simplify the definition"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, QueryError> {
        let first = self.and_expr()?;
        self.junction(JunctionOp::Or, "or", first, Self::and_expr)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let first = self.unary()?;
        self.junction(JunctionOp::And, "and", first, Self::unary)
    }

    /// `first (keyword part)*`: the first part alone, or a junction of all of them.
    fn junction(
        &mut self,
        op: JunctionOp,
        keyword: &str,
        first: Expr,
        part: fn(&mut Self) -> Result<Expr, QueryError>,
    ) -> Result<Expr, QueryError> {
        if !self.peek().is_word(keyword) {
            return Ok(first);
        }
        let keyword_found = self.found();
        let mut parts = vec![first];
        while self.peek().is_word(keyword) {
            self.advance();
            parts.push(part(self)?);
        }
        Ok(Expr::Junction {
            op,
            parts,
            keyword: keyword_found,
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        let token = self.peek().clone();
        let prefix = [("not", PrefixOp::Not), ("any", PrefixOp::Any), ("all", PrefixOp::All)]
            .into_iter()
            .find(|(word, _)| token.is_word(word));
        if let Some((_, op)) = prefix {
            self.advance();
            self.enter(token.pos)?;
            let operand = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Prefix {
                op,
                pos: token.pos,
                operand: Box::new(operand),
            });
        }
        if token.kind == TokenKind::LParen {
            self.advance();
            self.enter(token.pos)?;
            let inner = self.expr()?;
            let expected = format!(
                "AND, OR or ')' to close the '(' at line {}, column {}",
                token.pos.line, token.pos.column
            );
            self.expect(TokenKind::RParen, &expected)?;
            self.depth -= 1;
            return Ok(inner);
        }
        self.operand()
    }

    fn operand(&mut self) -> Result<Expr, QueryError> {
        let left = self.chain()?;
        if self.peek().kind != TokenKind::Symbol {
            return Ok(Expr::Chain(left));
        }
        let found = self.found();
        let token = self.advance();
        let symbol = Symbol::from_text(token.text).expect("the lexer only makes comparison symbols");
        let right = self.chain()?;
        Ok(Expr::Compare {
            left: Box::new(left),
            symbol,
            symbol_found: found,
            right: Box::new(right),
        })
    }

    fn chain(&mut self) -> Result<Chain, QueryError> {
        let first = self.at;
        let head = self.head()?;
        let mut calls = Vec::new();
        while self.peek().kind == TokenKind::Dot {
            self.advance();
            if self.peek().kind != TokenKind::Word {
                return Err(self.error_here("a function name after '.', such as count"));
            }
            calls.push(self.call()?);
        }
        Ok(Chain {
            head,
            calls,
            text: self.source_since(first),
            next: self.found(),
        })
    }

    fn head(&mut self) -> Result<Head, QueryError> {
        let token = self.peek().clone();
        let value = match &token.kind {
            TokenKind::Str(text) => Value::Str(text.clone()),
            TokenKind::Integer(n) => Value::Integer(*n),
            TokenKind::Decimal(x) => Value::Decimal(*x),
            TokenKind::Word if self.peek_second().kind == TokenKind::LParen => return Ok(Head::Call(self.call()?)),
            TokenKind::Word if token.is_word("true") => Value::Bool(true),
            TokenKind::Word if token.is_word("false") => Value::Bool(false),
            TokenKind::Word if ["and", "or", "as"].iter().any(|w| token.is_word(w)) => {
                return Err(self.error_here("an expression such as event('Name').count() >= 1 or trait('name')"))
            }
            TokenKind::Word => {
                return Err(QueryError::at(
                    token.pos,
                    format!(
                        "expected '(' after {}: functions are called as event('Name'); strings need quotes",
                        token.describe()
                    ),
                ))
            }
            _ => return Err(self.error_here("an expression such as event('Name'), trait('name') or a value")),
        };
        self.advance();
        Ok(Head::Value(value, token.pos))
    }

    /// `name(args)`; the next token is the name.
    fn call(&mut self) -> Result<Call, QueryError> {
        let name = self.advance();
        let display = name.text.to_ascii_lowercase();
        self.expect(TokenKind::LParen, &format!("'(' after {display}"))?;
        self.enter(name.pos)?;
        let braced = self.peek().kind == TokenKind::LBrace;
        if braced {
            self.advance();
        }
        let closing = if braced { TokenKind::RBrace } else { TokenKind::RParen };
        let mut args = Vec::new();
        if self.peek().kind != closing {
            loop {
                args.push(self.arg()?);
                if self.peek().kind != TokenKind::Comma {
                    break;
                }
                self.advance();
            }
        }
        let close_text = if braced { "'}'" } else { "')'" };
        let close = self.expect(closing, &format!("',' or {close_text} after an argument of {display}("))?;
        if braced {
            self.expect(TokenKind::RParen, &format!("')' to close {display}("))?;
        }
        self.depth -= 1;
        Ok(Call {
            name: display,
            pos: name.pos,
            args,
            close: close.pos,
        })
    }

    fn arg(&mut self) -> Result<Arg, QueryError> {
        let first = self.at;
        let pos = self.peek().pos;
        let label = if self.peek().kind == TokenKind::Word && self.peek_second().kind == TokenKind::Colon {
            let word = self.advance();
            self.advance();
            Some(Word {
                text: word.text.to_ascii_lowercase(),
                pos: word.pos,
            })
        } else {
            None
        };
        let value = match self.quantity() {
            Some(quantity) => quantity,
            None => ArgValue::Expr(self.expr()?),
        };
        let as_type = if self.peek().is_word("as") {
            self.advance();
            if self.peek().kind != TokenKind::Word {
                return Err(self.error_here("a type after 'as': number, string or array"));
            }
            let word = self.advance();
            Some(Word {
                text: word.text.to_ascii_lowercase(),
                pos: word.pos,
            })
        } else {
            None
        };
        Ok(Arg {
            pos,
            label,
            value,
            as_type,
            text: self.source_since(first),
        })
    }

    /// `7 days`: a number directly followed by a word that is not a keyword.
    fn quantity(&mut self) -> Option<ArgValue> {
        let amount = match self.peek().kind {
            TokenKind::Integer(n) => Value::Integer(n),
            TokenKind::Decimal(x) => Value::Decimal(x),
            _ => return None,
        };
        let unit = self.peek_second();
        if unit.kind != TokenKind::Word || ["as", "and", "or"].iter().any(|w| unit.is_word(w)) {
            return None;
        }
        self.advance();
        let unit = self.advance();
        Some(ArgValue::Quantity {
            amount,
            unit: Word {
                text: unit.text.to_ascii_lowercase(),
                pos: unit.pos,
            },
        })
    }
}
