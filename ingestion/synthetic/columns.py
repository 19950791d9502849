"""Arrow columns built in bulk from numpy arrays: ids, timestamps and dates as text,
string choices, and typed columns that are text in CSV and typed in Parquet; ``_table``
checks the columns against the landing contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.schema import ENTITIES
from ingestion.synthetic.params import _NEVER, DAY

# ---------------------------------------------------------------------------------------
# String columns, built in bulk
# ---------------------------------------------------------------------------------------

_QUADS = np.frombuffer(b"".join(b"%04d" % i for i in range(10_000)), dtype="<u4")


def _validity(valid: np.ndarray | None) -> tuple[pa.Buffer | None, int]:
    if valid is None or valid.all():
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), int((~valid).sum())


def _fixed_strings(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Rows of an (n, width) uint8 matrix as a string array, without per-row Python."""
    n, width = matrix.shape
    data = np.ascontiguousarray(matrix)
    large = n * width >= 2**31 - 1
    offsets = np.arange(0, n * width + 1, width, dtype=np.int64 if large else np.int32)
    bitmap, nulls = _validity(valid)
    cls = pa.LargeStringArray if large else pa.StringArray
    return cls.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, nulls)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of ints in [0, 10**width) as an (n, width) uint8 matrix.

    Four digits per table look-up, and one 64-bit division: 64-bit integer division is
    the slow part, and ids number in the tens of millions at full size.
    """
    if not 1 <= width <= 12:
        raise ValueError(f"width {width} not in 1..12")
    quads = np.empty((len(values), 3), dtype="<u4")
    low = (values % 100_000_000).astype(np.uint32)
    quads[:, 0] = _QUADS[(values // 100_000_000).astype(np.uint32) % 10_000]
    quads[:, 1] = _QUADS[low // 10_000]
    quads[:, 2] = _QUADS[low % 10_000]
    return quads.view(np.uint8)[:, 12 - width :]


def _ids(prefix: str, numbers: np.ndarray, width: int = 8) -> pa.Array:
    """IDs like OPP-00001234; ``numbers`` < 0 become nulls."""
    valid = numbers >= 0
    if len(numbers) and numbers.max() >= 10**width:
        raise ValueError(f"{prefix} ids need more than {width} digits")
    p = np.frombuffer(prefix.encode(), dtype=np.uint8)
    out = np.empty((len(numbers), len(p) + width), dtype=np.uint8)
    out[:, : len(p)] = p
    out[:, len(p) :] = _digits(np.where(valid, numbers, 0), width)
    return _fixed_strings(out, None if valid.all() else valid)


def _timestamp_text(ts: np.ndarray) -> pa.Array:
    """int seconds → '2026-03-01T14:05:09Z' strings; _NEVER → null.

    Arrow's own timestamp formatting runs at ~1 µs a value; three table look-ups
    ("YYYY-MM-" by day, "DDTHH:MM" by day-of-month and minute, ":SSZ" by second) build
    the same text an order of magnitude faster.
    """
    if len(ts) == 0:
        return pa.array([], type=pa.string())
    valid = ts != _NEVER
    # Nulls borrow a real time, so the table of dates spans only the data.
    t = np.where(valid, ts, ts[valid].min() if valid.any() else 0)
    day, sec = np.divmod(t, DAY)
    d0, d1 = int(day.min()), int(day.max())
    dates = np.arange(d0, d1 + 1).astype("datetime64[D]").astype("U10").astype("S10")
    month_part = np.frombuffer(b"".join(d[:8] for d in dates), dtype="<u8")
    dom = np.array([int(d[8:10]) for d in dates], dtype=np.int64)
    minute, second = np.divmod(sec, 60)
    out = np.empty(len(t), dtype=np.dtype([("a", "<u8"), ("b", "<u8"), ("c", "<u4")]))
    out["a"] = month_part[day - d0]
    out["b"] = _DAY_MINUTE[dom[day - d0] * 1440 + minute]
    out["c"] = _SECOND_Z[second]
    return _fixed_strings(out.view(np.uint8).reshape(len(t), 20), valid)


_DAY_MINUTE = np.frombuffer(
    "".join(f"{d:02d}T{m // 60:02d}:{m % 60:02d}" for d in range(32) for m in range(1440)).encode(),
    dtype="<u8",
)
_SECOND_Z = np.frombuffer("".join(f":{s:02d}Z" for s in range(60)).encode(), dtype="<u4")


def _take(choices: Sequence[str], idx: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(list(choices), type=pa.string()).take(pa.array(idx, type=pa.int32()))
    if valid is not None and not valid.all():
        arr = pc.if_else(pa.array(valid), arr, pa.scalar(None, pa.string()))
    return arr


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _null_where(arr: pa.Array, valid: np.ndarray) -> pa.Array:
    if valid.all():
        return arr
    return pc.if_else(pa.array(valid), arr, pa.scalar(None, arr.type))


# ---------------------------------------------------------------------------------------
# Typed columns (CSV text or Parquet types)
# ---------------------------------------------------------------------------------------


def _ts_col(ts: np.ndarray, fmt: str) -> pa.Array:
    if fmt == "csv":
        return _timestamp_text(ts)
    valid = ts != _NEVER
    micros = np.where(valid, ts, 0) * 1_000_000
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=~valid)


def _date_col(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~valid
    return pa.array(days.astype(np.int32), type=pa.date32(), mask=mask)


def _double_col(x: np.ndarray, fmt: str, valid: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(x, type=pa.float64(), mask=None if valid is None else ~valid)
    if fmt == "csv" and arr.null_count < len(arr):
        # Arrow writes large doubles as 1e+10; when every value is whole, integer text
        # reads back as the same double and looks like money.
        whole = pc.equal(arr, pc.floor(arr))
        if pc.all(pc.or_kleene(whole, pc.is_null(arr))).as_py():
            return arr.cast(pa.int64())
    return arr


def _int_col(x: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    return pa.array(x.astype(np.int64), type=pa.int64(), mask=None if valid is None else ~valid)


def _bool_col(x: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(x, dtype=bool), type=pa.bool_())


def _table(entity: str, columns: dict[str, pa.Array]) -> pa.Table:
    expected = ENTITIES[entity].column_names
    if list(columns) != expected:  # a programming error, not a user error
        raise AssertionError(f"{entity}: built {list(columns)}, contract says {expected}")
    return pa.table(columns)
