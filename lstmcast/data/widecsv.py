"""A large CSV read block by block, its value columns straight into one float32 matrix.

pandas' reader peaks at about 4.5x the float64 frame it builds, and pyarrow's `read_csv`
keeps thousands of small buffers per block for a wide file: both hold far more than the
data. This reader goes through pyarrow's streaming reader (`open_csv`): each block's
numeric columns are parsed as float64, checked, cast to float32 and the block dropped, so
the whole file is never held in float64. The result is an ordinary DataFrame whose value
columns are views of one [columns, rows] float32 matrix (each series contiguous).

Float32 is what training uses anyway (the flat array of scaled series): a value parsed
here is the float64 parse cast to float32, bit for bit. Scalers and metrics are computed
in float64 from these float32 values, so results can differ from a float64 read in about
the seventh significant digit; files under `STREAM_MIN_BYTES` keep the float64 read.

Anything this reader does not reproduce exactly returns None, and the caller reads the
file as before: a non-numeric, infinite or huge cell (whose error names the file, column
and line), a ragged row, a type the first block did not show, odd names or encodings.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Smaller files are read whole, in float64, as before.
STREAM_MIN_BYTES = 8 * 2**20
# Bytes of CSV text per block: bounds what the parse holds besides the float32 matrix.
BLOCK_BYTES = 4 * 2**20
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class _Unsupported(Exception):
    """This file is for the whole-file readers."""


def read_streaming(path: Any, encoding: str, sep: str, decimal: str, header: list[str],
                   null_values: list[str], max_magnitude: float, size: int | None = None) -> pd.DataFrame | None:
    """The file with float32 value columns, or None where the whole-file readers must read it.

    `path` is a file's path, or a callable giving a fresh binary buffer each call (a spooled
    pipe) with its `size`.
    """
    if encoding != "utf-8-sig" or decimal != "." or not header or "" in header or len(set(header)) < len(header):
        return None
    if (size if size is not None else Path(path).stat().st_size) < STREAM_MIN_BYTES:
        return None
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    try:
        return _read(path, sep, null_values, max_magnitude, pa, pacsv)
    except (_Unsupported, pa.ArrowException, OSError, ValueError, MemoryError):
        return None
    finally:
        release_memory()


def release_memory() -> None:
    """Give freed memory back to the system: pyarrow's pool keeps the blocks it freed and
    glibc's heap the holes the parse left (measured: 130 MB kept after reading a 46 MB CSV)."""
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc only
    except (OSError, AttributeError):
        pass


def _open(path: Any, sep: str, null_values: list[str], pacsv, types: dict | None = None):
    return pacsv.open_csv(
        path() if callable(path) else path, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(delimiter=sep),
        convert_options=pacsv.ConvertOptions(null_values=null_values, strings_can_be_null=True,
                                             quoted_strings_can_be_null=True, column_types=types or {}))


def _read(path: Any, sep: str, null_values: list[str], max_magnitude: float, pa, pacsv) -> pd.DataFrame:
    with _open(path, sep, null_values, pacsv) as first:  # the first block's types
        schema = first.schema
    names = [str(n).strip() for n in schema.names]
    if "" in names or len(set(names)) < len(names):
        raise _Unsupported
    plain = (pa.types.is_integer, pa.types.is_boolean, pa.types.is_string, pa.types.is_large_string, pa.types.is_date32)
    values, others = [], []
    for i, f in enumerate(schema):
        t = f.type
        if pa.types.is_floating(t):
            values.append(i)
        elif (pa.types.is_timestamp(t) and t.tz is None) or any(check(t) for check in plain):
            others.append(i)  # time, ids (integers too: pandas reads them as int64), text (data.py reports it)
        else:  # offsets, times of day, all-empty columns: the pandas reader keeps them as data.py expects
            raise _Unsupported
    if not values:
        raise _Unsupported
    types = {schema.names[i]: pa.float64() for i in values}
    blocks: list[np.ndarray] = []
    kept: list[list] = [[] for _ in others]
    with _open(path, sep, null_values, pacsv, types) as reader:
        for batch in reader:
            blocks.append(_block(batch, values, max_magnitude))
            for k, i in enumerate(others):
                kept[k].append(batch.column(i))
    if not blocks or not sum(b.shape[1] for b in blocks):
        raise _Unsupported  # no data rows: the whole-file readers say so
    matrix = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]  # [columns, rows]
    del blocks
    df = pd.DataFrame(matrix.T, columns=[names[i] for i in values], copy=False)
    for k, i in enumerate(others):  # in file order: column i goes to position i
        column = pa.chunked_array(kept[k], type=schema.types[i]).to_pandas(date_as_object=False)
        if pa.types.is_string(schema.types[i]) and _numbers(column):
            raise _Unsupported  # " 1.5": pandas' reader skips the initial space and reads a number
        df.insert(i, names[i], column)
    return df


def _block(batch, columns: list[int], max_magnitude: float) -> np.ndarray:
    """One block's value columns as float32 [columns, rows], checked in float64 first."""
    out = np.empty((len(columns), batch.num_rows), dtype=np.float32)
    for k, i in enumerate(columns):
        col = batch.column(i).to_numpy(zero_copy_only=False)  # float64, NaN where empty
        with np.errstate(invalid="ignore"):
            if (np.abs(col) > min(max_magnitude, _FLOAT32_MAX)).any() or np.isinf(col).any():
                raise _Unsupported  # the whole-file reader names the line, or keeps it in float64
        out[k] = col
    return out


def _numbers(column: pd.Series) -> bool:
    sample = column.dropna().head(50)
    return bool(len(sample)) and bool(pd.to_numeric(sample.astype(str).str.strip(), errors="coerce").notna().all())
