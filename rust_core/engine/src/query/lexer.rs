//! Splits query text into tokens, each with its line and column (1-based, columns in
//! characters), ending with one `End` token placed just after the last character.
//!
//! The language has words (function names, keywords, units; compared case-insensitively by the
//! parser), strings in single or double quotes with the escapes `\\ \' \" \n \t \r`, integers
//! and decimals (a `-` directly before a digit makes a negative number: there is no
//! arithmetic), and the punctuation `( ) { } , . :` plus the comparison symbols
//! `= == != > >= < <=`. It has no comments.

use super::error::{Pos, QueryError};
use super::syntax::quote_source;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TokenKind {
    Word,
    Str(String),
    Integer(i64),
    /// Always finite.
    Decimal(f64),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Dot,
    Colon,
    /// A comparison symbol, kept as written (`=`, `==`, `!=`, `>`, `>=`, `<`, `<=`).
    Symbol,
    End,
}

#[derive(Clone, Debug)]
pub(crate) struct Token<'a> {
    pub kind: TokenKind,
    pub pos: Pos,
    /// Byte offset of the token in the source.
    pub start: usize,
    /// The source text of the token (empty for `End`).
    pub text: &'a str,
}

impl Token<'_> {
    /// How error messages name the token: `')'`, `'AND'`, `end of input`.
    pub fn describe(&self) -> String {
        match self.kind {
            TokenKind::End => "end of input".to_string(),
            TokenKind::Str(_) => quote_source(self.text),
            _ => format!("'{}'", quote_source(self.text)),
        }
    }

    /// True for a word equal to `keyword`, ignoring ASCII case.
    pub fn is_word(&self, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(keyword)
    }
}

/// All tokens of `text`, or the first lexical error.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token<'_>>, QueryError> {
    let mut lexer = Lexer {
        text,
        offset: 0,
        pos: Pos { line: 1, column: 1 },
    };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_whitespace();
        let token = lexer.next_token()?;
        let end = token.kind == TokenKind::End;
        tokens.push(token);
        if end {
            return Ok(tokens);
        }
    }
}

struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    offset: usize,
    /// Position of the next character.
    pos: Pos,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.text[self.offset..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.text[self.offset..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        if c == '\n' {
            self.pos = Pos {
                line: self.pos.line + 1,
                column: 1,
            };
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn next_token(&mut self) -> Result<Token<'a>, QueryError> {
        let (start, pos) = (self.offset, self.pos);
        let Some(c) = self.bump() else {
            return Ok(Token {
                kind: TokenKind::End,
                pos,
                start,
                text: "",
            });
        };
        let kind = match c {
            '(' => TokenKind::LParen,
            ')' => TokenKind::RParen,
            '{' => TokenKind::LBrace,
            '}' => TokenKind::RBrace,
            ',' => TokenKind::Comma,
            '.' => TokenKind::Dot,
            ':' => TokenKind::Colon,
            '=' | '>' | '<' => {
                if self.peek() == Some('=') {
                    self.bump();
                }
                TokenKind::Symbol
            }
            '!' if self.peek() == Some('=') => {
                self.bump();
                TokenKind::Symbol
            }
            '!' => return Err(QueryError::at(pos, "unexpected '!': expected '!=' (differs) or NOT")),
            '\'' | '"' => TokenKind::Str(self.string(c, pos)?),
            '-' if self.peek().is_some_and(|d| d.is_ascii_digit()) => self.number(start, pos)?,
            d if d.is_ascii_digit() => self.number(start, pos)?,
            w if w.is_ascii_alphabetic() || w == '_' => {
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    self.bump();
                }
                TokenKind::Word
            }
            '#' | '/' => {
                return Err(QueryError::at(
                    pos,
                    format!("unexpected character '{c}': the query language has no comments"),
                ))
            }
            other => {
                return Err(QueryError::at(
                    pos,
                    format!("unexpected character {other:?}: expected a function such as event('Name'), a string, a number or AND, OR, NOT"),
                ))
            }
        };
        Ok(Token {
            kind,
            pos,
            start,
            text: &self.text[start..self.offset],
        })
    }

    /// The rest of a string whose opening quote was just read; returns its value.
    fn string(&mut self, quote: char, open: Pos) -> Result<String, QueryError> {
        let mut value = String::new();
        loop {
            let escape_pos = self.pos;
            match self.bump() {
                None => {
                    return Err(QueryError::at(
                        open,
                        format!("string not closed: expected a closing {quote} before the end of input"),
                    ))
                }
                Some(c) if c == quote => return Ok(value),
                Some('\\') => {
                    let escaped = match self.bump() {
                        Some('\\') => '\\',
                        Some('\'') => '\'',
                        Some('"') => '"',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        other => {
                            let found = other.map_or("the end of input".to_string(), |c| format!("\\{c}"));
                            return Err(QueryError::at(
                                escape_pos,
                                format!(r#"unknown escape {found} in a string: expected one of \\ \' \" \n \t \r"#),
                            ));
                        }
                    };
                    value.push(escaped);
                }
                Some(c) => value.push(c),
            }
        }
    }

    /// The rest of a number whose first character (a digit or `-`) was just read.
    fn number(&mut self, start: usize, pos: Pos) -> Result<TokenKind, QueryError> {
        self.digits();
        let decimal = self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit());
        if decimal {
            self.bump();
            self.digits();
        }
        let text = &self.text[start..self.offset];
        let out_of_range = || QueryError::at(pos, format!("number {text} is out of range"));
        if decimal {
            let value: f64 = text.parse().map_err(|_| out_of_range())?;
            if !value.is_finite() {
                return Err(out_of_range());
            }
            Ok(TokenKind::Decimal(value))
        } else {
            text.parse().map(TokenKind::Integer).map_err(|_| out_of_range())
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
    }
}
