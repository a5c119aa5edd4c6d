"""Writing a role's rows or columns as a Parquet file (pyarrow is imported only when a role flushes)."""

from __future__ import annotations

import contextlib
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
    called with each group's table, then `close` with the last. A file whose writing failed
    (a full disk) is removed, as pq.write_table does, so no result is left half-written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: Any = None

    def __call__(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        try:
            if self._writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._writer = pq.ParquetWriter(self.path, table.schema)
            self._writer.write_table(table)
        except BaseException:
            self._abort()
            raise

    def close(self, last: pa.Table) -> None:
        """Write `last` and close the file; with no group written yet, one plain write."""
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_table(last, self.path)
            return
        if len(last):
            self(last)
        try:
            self._writer.close()
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        self.path.unlink(missing_ok=True)
