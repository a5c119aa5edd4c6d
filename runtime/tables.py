"""Writing a role's rows or columns as a Parquet file (pyarrow is imported only when a role flushes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    pq.write_table(table, path)


def write_table(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)


class RowGroups:
    """One Parquet file written a row group at a time (a long run's rows leave as they fill):
    called with each group's table, then `close` with the last (the file exists even when
    there were no rows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: Any = None

    def __call__(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)

    def close(self, last: pa.Table) -> None:
        if len(last) or self._writer is None:
            self(last)
        self._writer.close()
