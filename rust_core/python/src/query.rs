//! The query language's parse and type check (`tributary_engine::query`), callable without an
//! engine: what `CreateAudience` and `Preview` run on a definition before anything else.

use pyo3::prelude::*;
use tributary_engine::audiences::canonical_query;
use tributary_engine::query::{Expect, Kind};

use crate::without_gil;

/// Parses and type-checks a definition; returns its canonical text.
///
/// Args:
///     text: the definition, in the query language (QUERY_LANGUAGE.md).
///     accounts: an `ACCOUNTS` definition (default: `USERS`).
///     computed_trait: a computed trait, which ends in a value (default: an audience, which
///         ends in a condition).
///
/// Returns:
///     The definition as the engine renders it; parsing that gives the same definition.
///
/// Raises:
///     InvalidRequest: the definition does not parse or type-check; the message has the line
///         and column and a caret under it.
#[pyfunction]
#[pyo3(signature = (text, *, accounts=false, computed_trait=false))]
fn check_query(py: Python<'_>, text: &str, accounts: bool, computed_trait: bool) -> PyResult<String> {
    let kind = if accounts { Kind::Accounts } else { Kind::Users };
    let expect = if computed_trait {
        Expect::ComputedTrait
    } else {
        Expect::Audience
    };
    without_gil(py, || canonical_query(text, kind, expect))
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(check_query, module)?)
}
