//! Identity resolution (Unify): the rules that decide which identifiers may link events into
//! one profile, and the union-find index over identity edges.
//!
//! This module holds the building blocks; the ingest path does not resolve identities yet.

pub mod graph;
pub mod rules;
pub mod union_find;
