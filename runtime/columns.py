"""Records kept as typed columns, not one dict per row: what the client and the sink hold for
every query of a run.

A dict a row (26 keys) cost about 2.4 KB a query (issue "speed and scale"): ten million queries would
not fit this machine. A column here is a typed `array` (8 bytes a number, 1 a flag) or, for
strings, 4-byte codes into the column's distinct values (worker names, drop reasons and notes
repeat), so a row costs what its values take. Null is NaN in a float column, `INT_NULL` in an int
column and code -1 in a string column. `table()` turns the columns into an Arrow table with a
fixed schema (the same whichever rows are null), so the rows can also leave in row groups as a
long run goes (`take()`) and one Parquet file holds them all.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

Kind = Literal["int", "float", "bool", "str"]
INT_NULL = -(2**63)  # a null in an int column (no query count, index or id comes near it)
_TYPECODE = {"int": "q", "float": "d", "bool": "b", "str": "i"}


class _Codes(dict[str | None, int]):
    """value -> code, a value seen for the first time given the next code (and added to
    `distinct`, the values in code order); None is -1."""

    __slots__ = ("distinct",)

    def __init__(self, distinct: list[str]) -> None:
        super().__init__({None: -1})
        self.distinct = distinct

    def __missing__(self, value: str) -> int:
        code = self[value] = len(self.distinct)
        self.distinct.append(value)
        return code


class Strings:
    """A string column's distinct values and their codes (-1 is null). `code` is the codes'
    own lookup, a C-level call: a value seen before (nearly every one) costs no Python frame."""

    __slots__ = ("code", "codes", "values")

    def __init__(self) -> None:
        self.values: list[str] = []
        self.codes = _Codes(self.values)
        self.code: Callable[[str | None], int] = self.codes.__getitem__

    def value(self, code: int) -> str | None:
        return None if code < 0 else self.values[code]


class Columns:
    """Typed columns, appended a row at a time (`append`, or `add` of a row already encoded) or
    set by index (`fill` then `set`).

    `add` only keeps the row's tuple; every `PENDING` rows they are moved into the columns at
    once (one C-level `extend` per column), which costs a third of appending value by value."""

    PENDING = 4096

    def __init__(self, kinds: Mapping[str, Kind]) -> None:
        self.kinds = dict(kinds)
        self.data: dict[str, array[Any]] = {n: array(_TYPECODE[k]) for n, k in self.kinds.items()}
        self.strings: dict[str, Strings] = {n: Strings() for n, k in self.kinds.items() if k == "str"}
        self.pending: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return (len(next(iter(self.data.values()))) if self.data else 0) + len(self.pending)

    def add(self, encoded: tuple[Any, ...]) -> None:
        """Append a row given as the stored values, in column order."""
        pending = self.pending
        pending.append(encoded)
        if len(pending) >= self.PENDING:
            self.settle()

    def settle(self) -> None:
        """Move the pending rows into the columns."""
        if self.pending:
            for column, values in zip(self.data.values(), zip(*self.pending, strict=True), strict=True):
                column.fromlist(list(values))  # a third faster than extend(values)
            self.pending = []

    def encode(self, name: str, value: Any) -> Any:
        """`value` as column `name` stores it."""
        kind = self.kinds[name]
        if value is None:
            return {"int": INT_NULL, "float": math.nan, "bool": 0, "str": -1}[kind]
        if kind == "str":
            return self.strings[name].code(value)
        return value

    def decode(self, name: str, stored: Any) -> Any:
        kind = self.kinds[name]
        if kind == "str":
            return self.strings[name].value(stored)
        if kind == "float":
            return None if math.isnan(stored) else stored
        if kind == "int":
            return None if stored == INT_NULL else stored
        return bool(stored)

    def append(self, row: Mapping[str, Any]) -> None:
        self.add(tuple(self.encode(name, row[name]) for name in self.data))

    def fill(self, name: str, value: Any, n: int) -> None:
        """Column `name` as `n` copies of `value` (rows set later by index)."""
        self.data[name] = array(_TYPECODE[self.kinds[name]], [self.encode(name, value)]) * n

    def set(self, name: str, i: int, value: Any) -> None:
        self.settle()
        self.data[name][i] = self.encode(name, value)

    def get(self, name: str, i: int) -> Any:
        self.settle()
        return self.decode(name, self.data[name][i])

    def row(self, i: int) -> dict[str, Any]:
        return {name: self.get(name, i) for name in self.data}

    def rows(self, start: int = 0) -> Iterable[dict[str, Any]]:
        return (self.row(i) for i in range(start, len(self)))

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
        return pa.schema([(n, types[k]) for n, k in self.kinds.items()])

    def table(self) -> pa.Table:
        import numpy as np
        import pyarrow as pa

        self.settle()
        arrays = []
        for name, kind in self.kinds.items():
            raw = np.frombuffer(self.data[name], dtype=np.dtype(self.data[name].typecode)) if len(self) else None
            if raw is None:
                arrays.append(pa.array([], type=self.schema().field(name).type))
            elif kind == "float":
                arrays.append(pa.array(raw, mask=np.isnan(raw), type=pa.float64()))
            elif kind == "int":
                arrays.append(pa.array(raw, mask=raw == INT_NULL, type=pa.int64()))
            elif kind == "bool":
                arrays.append(pa.array(raw.astype(bool), type=pa.bool_()))
            else:
                values = pa.array(self.strings[name].values, type=pa.string())
                codes = pa.array(raw, mask=raw < 0, type=pa.int32())
                arrays.append(pa.DictionaryArray.from_arrays(codes, values).dictionary_decode())
        return pa.Table.from_arrays(arrays, schema=self.schema())

    def take(self) -> pa.Table:
        """The rows so far as a table; the columns start empty again (string codes are kept)."""
        table = self.table()
        self.pending = []
        self.data = {n: array(_TYPECODE[k]) for n, k in self.kinds.items()}
        return table


class IdSet:
    """A set of query ids, one bit each: ids are the client's dense indexes (0..n-1), so a
    bitmap costs n/8 bytes where a set of ints costs about 60 bytes an id. Other ids (negative
    or beyond 2**32) go to a plain set."""

    __slots__ = ("bits", "other")

    def __init__(self) -> None:
        self.bits = bytearray()
        self.other: set[int] = set()

    def add(self, qid: int) -> bool:
        """Add `qid`; False if it was there already."""
        if not 0 <= qid < 1 << 32:
            if qid in self.other:
                return False
            self.other.add(qid)
            return True
        byte, bit = qid >> 3, 1 << (qid & 7)
        bits = self.bits
        if byte >= len(bits):
            bits.extend(bytes(max(byte + 1, 2 * len(bits)) - len(bits)))
        if bits[byte] & bit:
            return False
        bits[byte] |= bit
        return True

    def __contains__(self, qid: int) -> bool:
        if not 0 <= qid < 1 << 32:
            return qid in self.other
        byte = qid >> 3
        return byte < len(self.bits) and bool(self.bits[byte] & (1 << (qid & 7)))
