//! Predictions' tree models scored in the engine (`tributary_engine::predict::trees`): the raw
//! scores of a LightGBM model over the feature rows `Engine.prediction_rows` returned, without
//! the rows becoming a Python matrix.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tributary_engine::predict::trees::Forest;

use crate::without_gil;

/// The raw scores of a LightGBM model (its text format) over feature rows.
///
/// Args:
///     model_text: `Booster.model_to_string()`: one tree per iteration, numerical splits.
///     rows: row-major little-endian f32, `width` values a row (`prediction_rows`' values).
///     width: the rows' columns.
///     columns: for each model feature, the column of the rows that holds it.
///
/// Returns:
///     Little-endian f64, one a row: the sum of the trees' leaves, exactly LightGBM's
///     `predict(raw_score=True)`.
///
/// Raises:
///     InvalidRequest: a model this does not score, or columns that do not fit the rows.
#[pyfunction]
fn tree_scores<'py>(
    py: Python<'py>,
    model_text: &str,
    rows: &[u8],
    width: usize,
    columns: Vec<u32>,
) -> PyResult<Bound<'py, PyBytes>> {
    let scores = without_gil(py, || Forest::parse(model_text)?.raw_scores(rows, width, &columns))?;
    let bytes: Vec<u8> = scores.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(PyBytes::new(py, &bytes))
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(tree_scores, module)?)
}
