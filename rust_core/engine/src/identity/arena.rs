//! The identity graph's identifier text, stored once: each identifier's value is appended to a
//! chunk of a byte arena and its type is a small number into a table of type names, so a node
//! refers to its identifier with a few bytes instead of owning two strings.
//!
//! Invariants: chunks are allocated at their full size and never reallocated (a value never
//! moves, so a `TextRef` stays valid and growing the arena copies nothing); a value never
//! straddles two chunks; the arena only grows (an identifier, once seen, stays a node, unless
//! a privacy deletion erases it: its bytes are zeroed in place and never reused).

use crate::identifiers::Identifier;

/// Bytes per chunk: large enough that chunk headers are negligible, small enough that the last,
/// partly filled chunk wastes little.
const CHUNK: usize = 1 << 20;

/// Where an identifier's text is: 12 bytes (the offset in its chunk and the type share a word).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextRef {
    chunk: u32,
    /// `offset << KIND_BITS | kind`: offsets stay below `CHUNK` (a longer value gets a chunk
    /// of its own, at offset 0).
    packed: u32,
    len: u32,
}

const KIND_BITS: u32 = 12;
const _: () = assert!(CHUNK <= 1 << (32 - KIND_BITS));

impl TextRef {
    /// The text of an erased node (see `IdentifierArena::erase`): it refers to no chunk.
    pub const ERASED: TextRef = TextRef {
        chunk: u32::MAX,
        packed: 0,
        len: 0,
    };

    pub fn is_erased(self) -> bool {
        self.chunk == u32::MAX
    }

    fn offset(self) -> usize {
        (self.packed >> KIND_BITS) as usize
    }

    fn kind(self) -> usize {
        (self.packed & ((1 << KIND_BITS) - 1)) as usize
    }
}

/// An identifier as the arena holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentRef<'a> {
    pub kind: &'a str,
    pub value: &'a str,
}

impl IdentRef<'_> {
    pub fn to_identifier(self) -> Identifier {
        Identifier {
            kind: self.kind.to_owned(),
            value: self.value.to_owned(),
        }
    }

    /// The same hash as `Identifier::hash128`.
    pub fn hash128(self) -> u128 {
        crate::identifiers::hash_parts(self.kind, self.value)
    }

    pub fn is(self, identifier: &Identifier) -> bool {
        self.kind == identifier.kind && self.value == identifier.value
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct IdentifierArena {
    kinds: Vec<String>,
    chunks: Vec<Vec<u8>>,
}

impl IdentifierArena {
    /// Stores an identifier's text and returns where it is.
    pub fn push(&mut self, identifier: &Identifier) -> TextRef {
        let kind = match self.kinds.iter().position(|known| *known == identifier.kind) {
            Some(kind) => kind,
            None => {
                self.kinds.push(identifier.kind.clone());
                self.kinds.len() - 1
            }
        };
        assert!(kind < 1 << KIND_BITS, "fewer than 4,096 identifier types");
        let value = identifier.value.as_bytes();
        let fits = self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.capacity() - chunk.len() >= value.len());
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK.max(value.len())));
        }
        let chunk_index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_index];
        let offset = chunk.len();
        chunk.extend_from_slice(value);
        TextRef {
            chunk: u32::try_from(chunk_index).expect("fewer than 2^32 chunks"),
            packed: (offset as u32) << KIND_BITS | kind as u32,
            len: u32::try_from(value.len()).expect("an identifier shorter than 4 GiB"),
        }
    }

    pub fn get(&self, at: TextRef) -> IdentRef<'_> {
        let start = at.offset();
        let bytes = &self.chunks[at.chunk as usize][start..start + at.len as usize];
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        IdentRef {
            kind: &self.kinds[at.kind()],
            // SAFETY: only `push` writes the arena, copying a `&str` whole, and a `TextRef` covers
            // exactly what one push wrote (chunks never move or change), so the bytes are UTF-8.
            // Checking them on every read cost ~5% of a bulk re-resolution.
            value: unsafe { std::str::from_utf8_unchecked(bytes) },
        }
    }

    /// Overwrites an identifier's text with zeros (a privacy deletion: its bytes must not stay
    /// in memory, nor in the next snapshot, which copies the chunks). The caller stops using
    /// `at` (the node is marked with `TextRef::ERASED`).
    pub fn erase(&mut self, at: TextRef) {
        if at.is_erased() {
            return;
        }
        let start = at.offset();
        self.chunks[at.chunk as usize][start..start + at.len as usize].fill(0);
    }

    /// Bytes held (chunks at their capacity).
    pub fn memory(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>() + self.kinds.iter().map(String::capacity).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_back_as_pushed_across_chunks() {
        let mut arena = IdentifierArena::default();
        let long = "x".repeat(CHUNK + 5);
        let inputs = [
            Identifier::new("email", "ann@example.com"),
            Identifier::new("user_id", "é-42"),
            Identifier::new("crm", &long),
            Identifier::new("email", ""),
        ];
        let refs: Vec<TextRef> = inputs.iter().map(|i| arena.push(i)).collect();
        // Fill past a chunk boundary.
        let many: Vec<(Identifier, TextRef)> = (0..100_000)
            .map(|n| {
                let identifier = Identifier::new("anonymous_id", &format!("anon-{n:012}"));
                let at = arena.push(&identifier);
                (identifier, at)
            })
            .collect();
        for (identifier, at) in inputs.iter().zip(&refs).chain(many.iter().map(|(i, at)| (i, at))) {
            let got = arena.get(*at);
            assert!(got.is(identifier));
            assert_eq!(got.hash128(), identifier.hash128());
            assert_eq!(&got.to_identifier(), identifier);
        }
        assert!(arena.chunks.len() > 2);
    }
}
