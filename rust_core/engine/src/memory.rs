//! Accounting of the engine's resident memory, by part: what `Engine::memory_usage` reports so
//! that growth per identifier and per event can be explained. Figures are what the structures
//! hold (tables at their capacity, vectors at theirs, strings' buffers), as the allocator sees
//! them give or take its rounding; they are estimates, not a heap walk.

use std::mem::size_of;

/// A vector's buffer.
pub fn heap<T>(items: &Vec<T>) -> usize {
    items.capacity() * size_of::<T>()
}

/// A string's buffer, rounded up to the allocator's 8-byte granularity.
#[allow(clippy::ptr_arg)] // the capacity is the String's, not the str's
pub fn string(text: &String) -> usize {
    text.capacity().div_ceil(8) * 8
}

/// A hashbrown table (std's HashMap and HashSet) with room for `capacity` entries of `T`.
pub use crate::shards::table_bytes as table;
