"""What exports add to a table that is not data, taken out with a note.

- `df.to_csv()` writes the index as a first column with an empty header, 0..n-1: row
  numbers, not a series (and in a long file an extra numeric column that hides the layout).
- A delimiter at the end of every line (spreadsheets write them) makes a column with no
  header and no values.
- Spreadsheets and locales write numbers with thousands separators: `"2,003.8"` (quoted
  in a comma file) or `2.003,8` (Excel's `;` with decimal commas). A text column whose
  every value is a number written one of these ways is read as numbers.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from lstmcast.wording import plural

# By the thousands separator: a number with groups, and one without (both may appear in a column).
_GROUPED = {",": re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?"), ".": re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?")}
_PLAIN = {",": re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"), ".": re.compile(r"[+-]?(?:\d+(?:,\d*)?|,\d+)")}
_NUMBERISH = re.compile(r"[+-]?[\d.,]*\d[\d.,]*")
LOOKS_GROUPED = re.compile(r"\d[,.]\d{3}(?:\D|$)")


def _unnamed(name: str) -> bool:
    return name == "" or name.startswith("Unnamed:")  # pandas' name for an empty header


def _row_numbers(column: pd.Series) -> bool:
    """Whether the column holds exactly 0, 1, ..., n-1."""
    if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return False
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    return bool(np.array_equal(values, np.arange(len(values), dtype="float64")))


def drop_unnamed(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """`df` without the columns with an empty header that hold no values or the row numbers 0..n-1."""
    empty, index = [], []
    for col in df.columns:
        if not _unnamed(col):
            continue
        if df[col].isna().all():
            empty.append(col)
        elif _row_numbers(df[col]):
            index.append(col)
    if index:
        notes.append(f"dropped the column with no header that holds the row numbers 0..{len(df) - 1} (the index "
                     "that pandas' to_csv writes; to_csv(index=False) leaves it out)")
    if empty:
        notes.append(f"dropped {plural(len(empty), 'empty column')} with no header "
                     "(a delimiter at the end of every line)")
    return df.drop(columns=empty + index) if empty or index else df  # drop(columns=[]) copies


def _convention(text: pd.Series, decimal: str) -> str | None:
    """The thousands separator under which every value of `text` is a number and some have groups."""
    for sep in ((",", ".") if decimal == "." else (".", ",")):
        grouped = text.str.fullmatch(_GROUPED[sep])
        if grouped.any() and (grouped | text.str.fullmatch(_PLAIN[sep])).all():
            return sep
    return None


def read_thousands(df: pd.DataFrame, decimal: str, notes: list[str]) -> pd.DataFrame:
    """Text columns whose values are all numbers with thousands separators, as numbers."""
    for col, dtype in df.dtypes.items():
        if dtype.kind != "O" and not isinstance(dtype, pd.StringDtype):
            continue  # numbers, times: the dtype says so at no cost (wide files have 100,000 columns)
        text = df[col].dropna()
        if text.empty or not isinstance(text.iloc[0], str) or not _NUMBERISH.fullmatch(text.iloc[0].strip()):
            continue  # dates, ids, words: the first value says so
        text = text.astype(str).str.strip()
        sep = _convention(text, decimal)
        if sep is None:
            continue
        point = "," if sep == "." else "."
        numbers = pd.to_numeric(text.str.replace(sep, "", regex=False).str.replace(point, ".", regex=False))
        example = text[text.str.fullmatch(_GROUPED[sep])].iloc[0]
        df[col] = numbers.reindex(df.index)
        notes.append(f"column {col!r}: numbers with thousands separators ({example!r} read as "
                     f"{numbers[text.index[text == example][0]]:g}: {sep!r} separates thousands, {point!r} decimals)")
    return df


def thousands_hint(values: pd.Series) -> str:
    """A clause for a 'not numeric' message when the text looks like numbers with thousands separators."""
    text = values.dropna().astype(str).head(100)
    if not text.str.contains(LOOKS_GROUPED).any():
        return ""
    return (" (numbers with thousands separators, but not one way throughout: write the column's numbers all "
            "as 2,003.8 or all as 2.003,8, or without separators)")
