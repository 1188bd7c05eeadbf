"""Value columns of a parsed CSV as float arrays, validated: one matrix for many columns.

A wide file of ten thousand series is ten thousand columns: converting and checking
them one pandas Series at a time took most of the load time, and every per-column copy
was another float64 copy of the data. `numeric_matrix` converts all numeric columns in
one step into one [series, rows] array whose rows are the series (views, not copies)
and checks them at once; only when something is wrong does it go column by column, to
name the first bad column and line exactly as before.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from lstmcast.data.csvfile import MAX_MAGNITUDE
from lstmcast.data.exported import thousands_hint
from lstmcast.errors import InputError


def line(row_label: object) -> int:
    """CSV line number of a 0-based data row (the header is line 1)."""
    return int(row_label) + 2


def is_numeric(series: pd.Series) -> bool:
    return is_numeric_dtype(series.dtype)


def is_numeric_dtype(dtype: object) -> bool:
    """Numeric and not boolean. Memoised by dtype: pandas' checks cost ~20 us each, seconds for 100,000 columns."""
    try:
        return _numeric_dtype(dtype)
    except TypeError:  # an unhashable extension dtype
        return _numeric_dtype.__wrapped__(dtype)


@functools.lru_cache(maxsize=256)
def _numeric_dtype(dtype: object) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def numeric_columns(df: pd.DataFrame) -> set[str]:
    """Names of the numeric (not boolean) columns, from the dtypes alone."""
    return {c for c, dtype in df.dtypes.items() if is_numeric_dtype(dtype)}


def to_numeric(path: Path, df: pd.DataFrame, col: str, what: str) -> np.ndarray:
    """One column as float64; InputError naming the line of a non-numeric, infinite or huge value."""
    raw = df[col]
    if is_numeric(raw):
        values, bad = raw, None
    else:
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad is not None and bad.any():
        row = bad.index[bad][0]
        raise InputError(
            f"{path}: column {col!r} line {line(row)} has non-numeric value {str(raw[row])!r}{what}"
            f"{thousands_hint(raw[bad])}; fix the value or choose the value columns with --target"
        )
    arr = values.to_numpy(dtype="float64", na_value=np.nan)
    _check_finite(path, df, col, arr, what)
    return arr


def _check_finite(path: Path, df: pd.DataFrame, col: str, arr: np.ndarray, what: str) -> None:
    inf = np.isinf(arr)
    if inf.any():
        row = df.index[np.flatnonzero(inf)[0]]
        raise InputError(f"{path}: column {col!r} line {line(row)} is infinite{what}; replace it with a finite number")
    with np.errstate(invalid="ignore"):
        huge = np.abs(arr) > MAX_MAGNITUDE
    if huge.any():
        k = np.flatnonzero(huge)[0]
        raise InputError(
            f"{path}: column {col!r} line {line(df.index[k])} holds {arr[k]:g}, beyond +-{MAX_MAGNITUDE:g}{what}; "
            "squares and sums of such values overflow: rescale the column (e.g. to thousands)"
        )


def numeric_matrix(path: Path, df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """The columns `cols` as float64 (float32 if they all are) [len(cols), rows], each row
    contiguous (row k is cols[k]).

    Raises the InputError `to_numeric` would raise for the first bad column.
    """
    numeric = numeric_columns(df)
    if not all(c in numeric for c in cols):  # text among them: convert one by one, naming the bad value
        out = np.empty((len(cols), len(df)), dtype=np.float64)
        for k, c in enumerate(cols):
            out[k] = to_numeric(path, df, c, "")
        return out
    # A float frame stores its columns as rows of one block: the transpose is usually a view.
    # float32 columns (lstmcast.widecsv, large files) stay float32: no float64 copy of them all.
    frame = df if list(df.columns) == list(cols) else df[cols]  # df[cols] copies: seconds for 100,000 columns
    dtype = np.float32 if (frame.dtypes == np.float32).all() else np.float64
    matrix = np.ascontiguousarray(frame.to_numpy(dtype=dtype, na_value=np.nan).T)
    limit = MAX_MAGNITUDE if dtype == np.float64 else np.finfo(np.float32).max  # float32: only inf is beyond
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(matrix) <= limit) & ~np.isnan(matrix)  # inf or beyond the limit
    if bad.any():
        k = int(np.flatnonzero(bad.any(axis=1))[0])
        _check_finite(path, df, cols[k], matrix[k], "")
    return matrix
