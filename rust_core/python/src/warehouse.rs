//! The warehouse destination's per-event work (`tributary_engine::warehouse`): a batch planned
//! into rows per table, then each table encoded as a COPY payload, both without the GIL. Python
//! keeps the connection, the DDL and the transactions (cdp_server/destinations/warehouse.py).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tributary_engine::warehouse::{encode_table, plan_batch, BatchPlan};

use crate::without_gil;

/// One table of a planned batch.
#[pyclass(frozen, module = "cdp_server._core")]
struct WarehouseTable {
    /// Its position in the plan (what `WarehousePlan.encode` takes).
    #[pyo3(get)]
    index: usize,
    #[pyo3(get)]
    name: String,
    /// How many rows the batch has for it.
    #[pyo3(get)]
    rows: usize,
    /// `(column, data type)` of the columns its CREATE TABLE makes, in order (`id` first).
    #[pyo3(get)]
    fixed_columns: Vec<(&'static str, &'static str)>,
    /// The columns some row has a value for, sorted by name (never `uuid_ts`): the COPY's
    /// columns, before `uuid_ts`.
    #[pyo3(get)]
    columns: Vec<String>,
    /// The data type each of `columns` is made with when the table lacks it.
    #[pyo3(get)]
    column_types: Vec<&'static str>,
}

/// A batch's rows per table of Segment's warehouse schema (see `plan_warehouse_batch`).
#[pyclass(frozen, module = "cdp_server._core")]
struct WarehousePlan {
    plan: BatchPlan,
    tables: Vec<Py<WarehouseTable>>,
}

/// One table's COPY payload.
#[pyclass(frozen, module = "cdp_server._core")]
struct WarehouseCopy {
    /// The whole COPY data (binary: signature to trailer), for `Copy.write`.
    #[pyo3(get)]
    payload: Py<PyBytes>,
    /// `COPY … (FORMAT BINARY)`; else the text format (a column of a type made by hand, which
    /// the server casts).
    #[pyo3(get)]
    binary: bool,
    /// `(column, count)` of the values that did not cast to their column's type (loaded as
    /// NULL).
    #[pyo3(get)]
    nulled: Vec<(String, u64)>,
}

#[pymethods]
impl WarehousePlan {
    /// The tables, in the order the batch first needs them (`users` last).
    #[getter]
    fn tables(&self, py: Python<'_>) -> Vec<Py<WarehouseTable>> {
        self.tables.iter().map(|table| table.clone_ref(py)).collect()
    }

    /// Properties and traits discarded for a reserved column name.
    #[getter]
    fn discarded(&self) -> u64 {
        self.plan.discarded()
    }

    /// Events of no known type (no row anywhere).
    #[getter]
    fn skipped_events(&self) -> u64 {
        self.plan.skipped_events()
    }

    /// Encodes table `table`'s rows for `COPY table (columns…, uuid_ts) FROM STDIN`.
    ///
    /// Args:
    ///     table: the table's `index`.
    ///     data_types: information_schema's `data_type` of each of the table's `columns`.
    ///     load_time_us: `uuid_ts` of every row, in microseconds since the Unix epoch.
    fn encode(
        &self,
        py: Python<'_>,
        table: usize,
        data_types: Vec<String>,
        load_time_us: i64,
    ) -> PyResult<WarehouseCopy> {
        let plan = &self.plan;
        let encoded = without_gil(py, || encode_table(plan, table, &data_types, load_time_us))?;
        Ok(WarehouseCopy {
            payload: PyBytes::new(py, &encoded.payload).unbind(),
            binary: encoded.binary,
            nulled: encoded.nulled,
        })
    }
}

/// Plans a batch for the warehouse: decodes its events and applies Segment's warehouse schema
/// (tables, flattening, names, reserved columns, types of new columns, the users fold).
///
/// Args:
///     raw: the batch's JSON array of Segment-Spec events (`Batch.raw`).
///     message_ids: each event's row id, in order (`Batch.message_ids`).
///
/// Raises:
///     InvalidRequest: `raw` is not a JSON array of objects, one per message id.
#[pyfunction]
fn plan_warehouse_batch(py: Python<'_>, raw: &[u8], message_ids: Vec<String>) -> PyResult<WarehousePlan> {
    let plan = without_gil(py, || plan_batch(raw, &message_ids))?;
    let tables = plan
        .tables()
        .iter()
        .enumerate()
        .map(|(index, rows)| {
            let columns = plan.columns(index);
            let table = WarehouseTable {
                index,
                name: rows.name().to_owned(),
                rows: rows.len(),
                fixed_columns: rows
                    .kind()
                    .fixed_columns()
                    .iter()
                    .map(|(name, column_type)| (*name, column_type.data_type()))
                    .collect(),
                columns: columns.iter().map(|(name, _)| (*name).to_owned()).collect(),
                column_types: columns.iter().map(|(_, column_type)| column_type.data_type()).collect(),
            };
            Py::new(py, table)
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(WarehousePlan { plan, tables })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<WarehousePlan>()?;
    module.add_class::<WarehouseTable>()?;
    module.add_class::<WarehouseCopy>()?;
    module.add_function(wrap_pyfunction!(plan_warehouse_batch, module)?)
}
