//! Identity resolution (Unify): the rules that decide which identifiers may link events into
//! one profile, the graph that applies them, and its building blocks.

pub mod arena;
pub mod clusters;
pub mod graph;
pub mod order;
pub mod root_table;
pub mod rules;
pub mod separations;
pub mod union_find;
