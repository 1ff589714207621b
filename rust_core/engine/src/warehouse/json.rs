//! The batch's JSON, read as the Python loader read it (orjson), one event at a time.
//!
//! Invariants:
//! - objects keep their members in document order, duplicates included; `unique_members` gives
//!   what a Python dict made from them holds (each key once, at its first position, with its last
//!   value), and every reader of an object goes through it;
//! - numbers follow orjson: an integer literal is an `Int` when it fits i64, a `UInt` when it
//!   fits only u64, else a `Float`; `-0` is the integer 0; a literal with a fraction or exponent
//!   is a `Float`, correctly rounded; one that overflows to infinity is an error;
//! - a string without escapes is a `Span` of the input, one with escapes is unescaped onto the
//!   end of the pool (which starts as a copy of the input), so every string outlives the parse;
//! - the input is strict JSON (RFC 8259) in UTF-8, nested at most `MAX_DEPTH` deep (orjson's
//!   own limit); anything else is an error naming the byte offset.
//!
//! Nodes live in a `Document` that is cleared between events, so a batch allocates its node
//! vectors once.

use std::fmt;

/// orjson's recursion limit.
pub const MAX_DEPTH: usize = 1024;

/// A byte range of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// One JSON value. Arrays and objects index their children in the `Document`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Span),
    Array { first: u32, len: u32 },
    Object { first: u32, len: u32 },
}

impl Node {
    /// Python's truthiness of the decoded value (`x or y` in the loader's rules).
    pub fn is_truthy(self) -> bool {
        match self {
            Node::Null => false,
            Node::Bool(b) => b,
            Node::Int(n) => n != 0,
            Node::UInt(n) => n != 0,
            Node::Float(f) => f != 0.0,
            Node::Str(span) => span.len > 0,
            Node::Array { len, .. } | Node::Object { len, .. } => len > 0,
        }
    }
}

/// An object member: its key (unescaped) and value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Member {
    pub key: Span,
    pub value: Node,
}

/// The nodes of one event: array items and object members, each container's contiguous.
#[derive(Default)]
pub struct Document {
    items: Vec<Node>,
    members: Vec<Member>,
    // Containers being read; a closed one's children move to `items`/`members`.
    open_items: Vec<Node>,
    open_members: Vec<Member>,
}

impl Document {
    pub fn clear(&mut self) {
        self.items.clear();
        self.members.clear();
    }

    pub fn items(&self, first: u32, len: u32) -> &[Node] {
        &self.items[first as usize..(first + len) as usize]
    }

    pub fn members(&self, first: u32, len: u32) -> &[Member] {
        &self.members[first as usize..(first + len) as usize]
    }
}

/// Why the batch's JSON could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonError {
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.reason)
    }
}

/// Reads a JSON array of values, one element at a time (`next_element`).
pub struct ArrayReader<'a> {
    input: &'a [u8],
    pos: usize,
    started: bool,
    done: bool,
}

impl<'a> ArrayReader<'a> {
    /// `input` must be UTF-8 (checked here) and hold one JSON array.
    pub fn new(input: &'a [u8]) -> Result<Self, JsonError> {
        if let Err(error) = std::str::from_utf8(input) {
            return Err(JsonError {
                offset: error.valid_up_to(),
                reason: "not UTF-8",
            });
        }
        if input.len() > u32::MAX as usize / 2 {
            return Err(JsonError {
                offset: 0,
                reason: "larger than 2 GiB",
            });
        }
        Ok(Self {
            input,
            pos: 0,
            started: false,
            done: false,
        })
    }

    /// The next element, read into `doc` (cleared first); strings with escapes go onto `pool`.
    /// `None` after the last one (and the end of the input was checked).
    pub fn next_element(&mut self, doc: &mut Document, pool: &mut Vec<u8>) -> Result<Option<Node>, JsonError> {
        if self.done {
            return Ok(None);
        }
        let mut parser = Parser {
            input: self.input,
            pos: self.pos,
            pool,
            doc,
        };
        parser.doc.clear();
        parser.skip_space();
        if !self.started {
            parser.expect(b'[', "expected a JSON array")?;
            self.started = true;
            parser.skip_space();
            if parser.peek() == Some(b']') {
                parser.pos += 1;
                return self.finish(parser.pos);
            }
        } else {
            match parser.peek() {
                Some(b',') => {
                    parser.pos += 1;
                    parser.skip_space();
                }
                Some(b']') => {
                    parser.pos += 1;
                    return self.finish(parser.pos);
                }
                _ => return Err(parser.error("expected ',' or ']'")),
            }
        }
        let node = parser.value(0)?;
        self.pos = parser.pos;
        Ok(Some(node))
    }

    fn finish(&mut self, pos: usize) -> Result<Option<Node>, JsonError> {
        self.done = true;
        let rest = &self.input[pos..];
        match rest.iter().position(|b| !is_space(*b)) {
            None => Ok(None),
            Some(offset) => Err(JsonError {
                offset: pos + offset,
                reason: "trailing characters after the array",
            }),
        }
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

struct Parser<'a, 'b> {
    input: &'a [u8],
    pos: usize,
    pool: &'b mut Vec<u8>,
    doc: &'b mut Document,
}

impl Parser<'_, '_> {
    fn error(&self, reason: &'static str) -> JsonError {
        JsonError {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.input.get(self.pos).is_some_and(|b| is_space(*b)) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    fn literal(&mut self, word: &'static [u8], node: Node) -> Result<Node, JsonError> {
        if self.input[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(node)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Node::Str(self.string()?)),
            Some(b't') => self.literal(b"true", Node::Bool(true)),
            Some(b'f') => self.literal(b"false", Node::Bool(false)),
            Some(b'n') => self.literal(b"null", Node::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        self.pos += 1; // '{'
        let open = self.doc.open_members.len();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_space();
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a string key"));
                }
                let key = self.string()?;
                self.skip_space();
                self.expect(b':', "expected ':'")?;
                self.skip_space();
                let value = self.value(depth)?;
                self.doc.open_members.push(Member { key, value });
                self.skip_space();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected ',' or '}'")),
                }
            }
        }
        let first = self.doc.members.len() as u32;
        let len = (self.doc.open_members.len() - open) as u32;
        self.doc.members.extend(self.doc.open_members.drain(open..));
        Ok(Node::Object { first, len })
    }

    fn array(&mut self, depth: usize) -> Result<Node, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        self.pos += 1; // '['
        let open = self.doc.open_items.len();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_space();
                let value = self.value(depth)?;
                self.doc.open_items.push(value);
                self.skip_space();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected ',' or ']'")),
                }
            }
        }
        let first = self.doc.items.len() as u32;
        let len = (self.doc.open_items.len() - open) as u32;
        self.doc.items.extend(self.doc.open_items.drain(open..));
        Ok(Node::Array { first, len })
    }

    /// A string at `pos` (its opening quote): a span of the input, or of its unescaped copy.
    fn string(&mut self) -> Result<Span, JsonError> {
        self.pos += 1; // '"'
        let start = self.pos;
        loop {
            match self.input.get(self.pos) {
                Some(b'"') => {
                    let span = Span {
                        start: start as u32,
                        len: (self.pos - start) as u32,
                    };
                    self.pos += 1;
                    return Ok(span);
                }
                Some(b'\\') => return self.escaped_string(start),
                Some(0..=0x1f) => return Err(self.error("control character in a string")),
                Some(_) => self.pos += 1,
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn escaped_string(&mut self, start: usize) -> Result<Span, JsonError> {
        let out_start = self.pool.len();
        self.pool.extend_from_slice(&self.input[start..self.pos]);
        loop {
            match self.input.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    let len = self.pool.len() - out_start;
                    if self.pool.len() > u32::MAX as usize {
                        return Err(self.error("the batch's strings pass 4 GiB"));
                    }
                    return Ok(Span {
                        start: out_start as u32,
                        len: len as u32,
                    });
                }
                Some(b'\\') => {
                    let escape = self.input.get(self.pos + 1).copied();
                    self.pos += 2;
                    let byte = match escape {
                        Some(b'"') => b'"',
                        Some(b'\\') => b'\\',
                        Some(b'/') => b'/',
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0c,
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b't') => b'\t',
                        Some(b'u') => {
                            let c = self.unicode_escape()?;
                            let mut buf = [0; 4];
                            self.pool.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            continue;
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("invalid escape"));
                        }
                    };
                    self.pool.push(byte);
                }
                Some(0..=0x1f) => return Err(self.error("control character in a string")),
                Some(&byte) => {
                    self.pool.push(byte);
                    self.pos += 1;
                }
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .input
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("short \\u escape"))?;
        let mut value = 0;
        for &digit in digits {
            let nibble = (digit as char)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid \\u escape"))?;
            value = value * 16 + nibble;
        }
        self.pos += 4;
        Ok(value)
    }

    /// The character of a `\uXXXX` escape (after the `u`), a surrogate pair taken whole; a lone
    /// surrogate is an error, as in orjson.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let high = self.hex4()?;
        let code = match high {
            0xd800..=0xdbff => {
                if self.input.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.error("lone surrogate in \\u escape"));
                }
                self.pos += 2;
                let low = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&low) {
                    return Err(self.error("lone surrogate in \\u escape"));
                }
                0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.error("lone surrogate in \\u escape")),
            code => code,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.input.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Node, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let leading_zero = self.peek() == Some(b'0');
        let integer_digits = self.digits();
        if integer_digits == 0 {
            return Err(self.error("expected a digit"));
        }
        if leading_zero && integer_digits > 1 {
            return Err(self.error("leading zero in a number"));
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(self.error("expected a digit after '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            integer = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        // ASCII by construction.
        let text = std::str::from_utf8(&self.input[start..self.pos]).unwrap_or_default();
        if integer {
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Node::Int(n));
            }
            if let Ok(n) = text.parse::<u64>() {
                return Ok(Node::UInt(n));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Node::Float(f)),
            _ => Err(JsonError {
                offset: start,
                reason: "number is infinite as a double",
            }),
        }
    }
}

/// What a Python dict built from `members` holds: each key once, at its first position, with
/// the value of its last occurrence. Borrowed as is when no key repeats (the usual case).
pub fn unique_members<'d>(members: &'d [Member], pool: &[u8]) -> std::borrow::Cow<'d, [Member]> {
    let key = |m: &Member| &pool[m.key.range()];
    let repeats = if members.len() <= 16 {
        (1..members.len()).any(|i| members[..i].iter().any(|earlier| key(earlier) == key(&members[i])))
    } else {
        let mut seen = rustc_hash::FxHashSet::default();
        !members.iter().all(|m| seen.insert(key(m)))
    };
    if !repeats {
        return std::borrow::Cow::Borrowed(members);
    }
    let mut unique: Vec<Member> = Vec::with_capacity(members.len());
    for member in members {
        match unique.iter_mut().find(|kept| key(kept) == key(member)) {
            Some(kept) => kept.value = member.value,
            None => unique.push(*member),
        }
    }
    std::borrow::Cow::Owned(unique)
}

/// The last member named `name` (what `dict.get(name)` finds), if any.
pub fn get(members: &[Member], pool: &[u8], name: &str) -> Option<Node> {
    members
        .iter()
        .rev()
        .find(|m| &pool[m.key.range()] == name.as_bytes())
        .map(|m| m.value)
}
