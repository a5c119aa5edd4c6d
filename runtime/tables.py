"""Writing a role's rows as a Parquet file (pyarrow is imported only when a role flushes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    pq.write_table(table, path)
