//! Exists for the benchmark, not as an API: `benchmarks/audiences.py` compares the bitmap
//! operations of the Rust `roaring` crate (the engine's audience bitmaps, `engage/events.rs`)
//! with pyroaring's (CRoaring) on the same sets. The loop runs here, so what is timed is the
//! operations alone, with no Python call per operation; pyroaring's side is timed from Python
//! and pays one call each, a small share of an operation on sets of this size.
//!
//! Both sides read the same bytes: roaring's portable format, which both libraries write
//! (pyroaring's `BitMap.serialize()`). The function is private (`_time_bitmap_op`, kept out of
//! the module's `__all__`): no API, so neither `_core.pyi` nor the facade know it.

use std::hint::black_box;
use std::time::Instant;

use pyo3::prelude::*;
use roaring::RoaringBitmap;
use tributary_engine::EngineError;

fn decode(bytes: &[u8], which: &str) -> Result<RoaringBitmap, EngineError> {
    RoaringBitmap::deserialize_from(bytes)
        .map_err(|err| EngineError::InvalidRequest(format!("{which}: not a portable roaring bitmap: {err}")))
}

/// Times `rounds` ANDs or ORs of two bitmaps with the Rust `roaring` crate, each making a new
/// bitmap as pyroaring's `a & b` and `a | b` do.
///
/// Args:
///     left: a bitmap in roaring's portable format (pyroaring's `BitMap.serialize()`).
///     right: the other one.
///     op: "and" or "or".
///     rounds: how many operations to time (at least 1).
///
/// Returns:
///     `(seconds for all rounds, cardinality of the result)`; decoding is not timed.
#[pyfunction(name = "_time_bitmap_op")]
fn time_bitmap_op(py: Python<'_>, left: &[u8], right: &[u8], op: &str, rounds: u32) -> PyResult<(f64, u64)> {
    let and = match op {
        "and" => true,
        "or" => false,
        _ => {
            return Err(crate::InvalidRequest::new_err(format!(
                "op must be \"and\" or \"or\", not {op:?}"
            )))
        }
    };
    crate::without_gil(py, || {
        let (left, right) = (decode(left, "left")?, decode(right, "right")?);
        let apply = |a: &RoaringBitmap, b: &RoaringBitmap| if and { a & b } else { a | b };
        let started = Instant::now();
        for _ in 0..rounds.max(1) {
            black_box(apply(black_box(&left), black_box(&right)));
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok((seconds, apply(&left, &right).len()))
    })
}

/// Adds this file's function to `cdp_server._core` as a plain attribute, not through
/// `add_function`: that would also list it in the module's `__all__`, the public names that
/// `_core.pyi` declares and `mypy.stubtest` checks, and it is not part of that surface.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.setattr("_time_bitmap_op", wrap_pyfunction!(time_bitmap_op, module)?)
}
