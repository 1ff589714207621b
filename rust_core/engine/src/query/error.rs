//! The one error of the query language: where (line and column, 1-based, columns counted in
//! characters) and what was found instead of what was expected.
//!
//! Invariant: the position is inside the text: its line exists, and its column is at most one
//! past the line's last character (that column means "at the end of the line", where a missing
//! `)` or the end of input is reported).

use std::fmt;

/// A definition that does not parse or does not type-check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// A position in the query text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    pub column: u32,
}

impl QueryError {
    pub(crate) fn at(pos: Pos, message: impl Into<String>) -> Self {
        QueryError {
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    /// The offending line followed by a line with `^` under the column, for a terminal:
    ///
    /// ```text
    /// trait('plan') = 'pro' AND event('X').count(
    ///                                             ^
    /// ```
    ///
    /// Tabs before the column are copied so the caret stays aligned.
    pub fn caret(&self, text: &str) -> String {
        let line = text.split('\n').nth(self.line.saturating_sub(1) as usize).unwrap_or("");
        let line = line.strip_suffix('\r').unwrap_or(line);
        let indent: String = line
            .chars()
            .take(self.column.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{line}\n{indent}^")
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for QueryError {}
