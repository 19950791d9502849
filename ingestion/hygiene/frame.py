"""The frame contract's reader (module doc of ``ingestion.hygiene``): the caller's frame
read tolerantly, contract columns coerced to one dtype per logical type, flags to numpy
bool, and the derived check-frame columns computed on demand; ``arrow_backed`` builds the
frame the fastest way from an Arrow table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ingestion.schema import Entity
from ingestion.stages import normalize_label


def arrow_backed(table: Any) -> pd.DataFrame:
    """A pyarrow Table (DuckDB's ``to_arrow_table()``) as the frame ``validate_batch``
    reads fastest: text columns stay Arrow-backed (no Python object per value: a third
    of the memory and of the time to build), the other columns become numpy."""
    import pyarrow as pa

    def text(t: Any) -> Any:
        is_text = pa.types.is_string(t) or pa.types.is_large_string(t)
        return pd.ArrowDtype(t) if is_text or t == pa.string_view() else None

    return table.to_pandas(types_mapper=text)


class _Source:
    """The caller's frame, read tolerantly: contract columns coerced to one dtype per
    logical type, flags to numpy bool, derived check columns computed on demand."""

    def __init__(self, entity: Entity, frame: pd.DataFrame) -> None:
        self.entity = entity
        self.frame = frame
        self.n = len(frame)
        self._cache: dict[str, Any] = {}

    def column(self, name: str) -> Any:
        """A contract column, coerced: object (str/None), datetime64, or float64."""
        if name not in self._cache:
            self._cache[name] = self._coerce(name)
        return self._cache[name]

    def _coerce(self, name: str) -> Any:
        ctype = self.entity.column(name).type
        if name not in self.frame.columns:
            if ctype in ("timestamp", "date"):
                return np.full(self.n, np.datetime64("NaT"), dtype="datetime64[ns]")
            if ctype in ("double", "bigint"):
                return np.full(self.n, np.nan)
            return np.full(self.n, None, dtype=object)
        s = self.frame[name]
        if ctype in ("timestamp", "date"):
            return _as_datetime(s)
        if ctype in ("double", "bigint"):
            return pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
        if s.dtype == object:
            return s.to_numpy()
        if isinstance(s.dtype, pd.ArrowDtype | pd.StringDtype):
            # Arrow-backed text stays Arrow: GX's null, set, regex and uniqueness checks
            # run on its buffers, with no Python string per value.
            return s.array
        return s.to_numpy(dtype=object, na_value=None)

    def raw(self, name: str, positions: np.ndarray) -> Any:
        """A frame column as it is (lineage, optional ``__raw`` text) at ``positions``,
        or None. Indexed first: converting all of a 10M-row column costs seconds."""
        if name not in self.frame.columns:
            return None
        return self.frame[name].iloc[positions].to_numpy(dtype=object)

    def flag(self, name: str, *, default: bool) -> np.ndarray:
        """A bool flag column where only an explicit False (or True for ``default``
        False) counts; NULL and an absent column read as ``default``."""
        if name not in self.frame.columns:
            return np.full(self.n, default)
        s = self.frame[name]
        hit = s.eq(not default)
        hit = hit.fillna(False) if hit.dtype != bool else hit
        return ~hit.to_numpy(dtype=bool) if default else hit.to_numpy(dtype=bool)

    def is_true(self, name: str) -> np.ndarray:
        return self.flag(name, default=False)

    def factorized(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes, distinct values) of a string column; code -1 is NULL."""
        key = f"{name}#factorized"
        if key not in self._cache:
            self._cache[key] = pd.factorize(self.column(name))
        return self._cache[key]

    def map_distinct(self, name: str, fn: Callable[[str], str]) -> np.ndarray:
        """``fn`` applied once per distinct value (such columns have few), NULL kept."""
        codes, uniques = self.factorized(name)
        mapped = np.array([fn(str(u)) for u in uniques] + [None], dtype=object)
        return mapped[codes]  # code -1 (NULL) picks the trailing None

    def check_column(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        value = self._derive(name)
        self._cache[name] = value
        return value

    def file_codes(self) -> np.ndarray:
        """Each row's landing file as a code (0 for all when the frame names none)."""
        if "_source_file" not in self.frame.columns:
            return np.zeros(self.n, dtype=np.int64)
        return pd.factorize(self.frame["_source_file"], use_na_sentinel=False)[0]

    def _derive(self, name: str) -> Any:
        base, _, suffix = name.partition("__")
        if name == "_source_file":
            return self.file_codes()
        if suffix == "in_file":
            # (file, value) as one number; NaN where the value is NULL (not judged).
            codes, uniques = self.factorized(base)
            pairs = self.file_codes() * (len(uniques) + 1) + codes
            return np.where(codes < 0, np.nan, pairs.astype(np.float64))
        if not suffix:
            if name == "opportunity_created_at":
                return _as_datetime(self.frame[name])
            return self.column(name)
        if suffix == "parses":
            return self.flag(name, default=True)
        if suffix == "known":
            return self.flag(name, default=True)
        if suffix == "conflicting":
            return self.is_true(name)
        if suffix == "if_not_conflicting":
            values = self.column(base).copy()
            missing = np.datetime64("NaT") if values.dtype.kind == "M" else None
            values[self.is_true("key__conflicting")] = missing
            return values
        if suffix == "first_day":
            days = pd.DatetimeIndex(self.column(base))
            return np.asarray(days.isna() | (days.day == 1))
        if suffix == "norm":
            return self.map_distinct(base, lambda v: v.strip().lower())
        if suffix == "lower":
            return self.map_distinct(base, str.lower)
        if suffix == "label":
            return self.map_distinct(base, normalize_label)
        if suffix == "if_closed":
            values = self.column(base).copy()
            values[~self.is_true("is_closed")] = np.datetime64("NaT")
            return values
        if suffix == "date":
            return pd.DatetimeIndex(self.column(base)).floor("D").to_numpy()
        if suffix == "not_duplicated":
            if f"{base}__seen_in_batch" in self.frame.columns:
                # Given by the loader, which validates a large batch in parts split by
                # contact: a duplicate's other row may sit in another part.
                in_batch = self.is_true(f"{base}__seen_in_batch")
            else:
                emails = pd.Series(self.map_distinct(base, lambda v: v.strip().lower()))
                in_batch = emails.duplicated(keep=False).to_numpy() & emails.notna().to_numpy()
            before = self.is_true(f"{base}__seen_before")
            return ~(in_batch | before)
        raise AssertionError(name)


def _as_datetime(s: pd.Series) -> np.ndarray:
    """datetime64 (naive UTC) from datetime64, tz-aware, date objects or text."""
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy()
