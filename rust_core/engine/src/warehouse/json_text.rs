//! JSON text of a decoded value, as orjson wrote it for the Python loader: compact, keys in the
//! order a Python dict holds them (`unique_members`), strings escaped only where JSON requires
//! (`"`, `\`, control characters: `\b \f \n \r \t`, else `\u00XX` in lower-case hex; nothing
//! else, so non-ASCII stays as is), floats in orjson's spelling.
//!
//! NUL characters: JSON text that is a column's value leaves them out (`Nul::Drop`: PostgreSQL's
//! text cannot hold them; the Python loader removed the `\u0000` escapes from such text); the
//! JSON text of an id or name sent as an object keeps the escape (`Nul::Escape`), as it did.

use super::json::{unique_members, Document, Node};
use super::number_text::write_json_float;

/// What becomes of a NUL character in a string.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nul {
    Drop,
    Escape,
}

/// Appends the JSON text of `node` (whose strings are in `pool`) to `pool` itself.
pub fn append_json(pool: &mut Vec<u8>, doc: &Document, node: Node, nul: Nul) {
    match node {
        Node::Null => pool.extend_from_slice(b"null"),
        Node::Bool(true) => pool.extend_from_slice(b"true"),
        Node::Bool(false) => pool.extend_from_slice(b"false"),
        Node::Int(n) => pool.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Node::UInt(n) => pool.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Node::Float(f) => write_json_float(pool, f),
        Node::Str(span) => append_string(pool, span.range(), nul),
        Node::Array { first, len } => {
            pool.push(b'[');
            for (i, item) in doc.items(first, len).iter().enumerate() {
                if i > 0 {
                    pool.push(b',');
                }
                append_json(pool, doc, *item, nul);
            }
            pool.push(b']');
        }
        Node::Object { first, len } => {
            let members = unique_members(doc.members(first, len), pool);
            pool.push(b'{');
            for (i, member) in members.iter().enumerate() {
                if i > 0 {
                    pool.push(b',');
                }
                append_string(pool, member.key.range(), nul);
                pool.push(b':');
                append_json(pool, doc, member.value, nul);
            }
            pool.push(b'}');
        }
    }
}

/// Appends `pool[range]` as a JSON string.
fn append_string(pool: &mut Vec<u8>, range: std::ops::Range<usize>, nul: Nul) {
    pool.push(b'"');
    if !pool[range.clone()].iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        pool.extend_from_within(range);
    } else {
        for i in range {
            let byte = pool[i];
            match byte {
                0 if nul == Nul::Drop => {}
                b'"' => pool.extend_from_slice(b"\\\""),
                b'\\' => pool.extend_from_slice(b"\\\\"),
                0x08 => pool.extend_from_slice(b"\\b"),
                0x0c => pool.extend_from_slice(b"\\f"),
                b'\n' => pool.extend_from_slice(b"\\n"),
                b'\r' => pool.extend_from_slice(b"\\r"),
                b'\t' => pool.extend_from_slice(b"\\t"),
                0x00..=0x1f => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    pool.extend_from_slice(b"\\u00");
                    pool.push(HEX[usize::from(byte >> 4)]);
                    pool.push(HEX[usize::from(byte & 0xf)]);
                }
                _ => pool.push(byte),
            }
        }
    }
    pool.push(b'"');
}
