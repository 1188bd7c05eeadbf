"""Reading a CSV file: encoding, delimiter and decimal mark sniffed, memory checked first.

Every way a file can be unreadable becomes one `InputError` naming the file.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from lstmcast.errors import InputError
from lstmcast.data import exported, frames
from lstmcast.data.widecsv import read_streaming

# Larger magnitudes overflow float64 in variances and squared errors (1e100**2 is still finite).
MAX_MAGNITUDE = 1e100
# Memory per byte of CSV: the parsed frame, float copies, scaled series and windows (an estimate).
MEMORY_PER_FILE_BYTE = 5
PARQUET_SUFFIXES = (".parquet", ".pq")
# pyarrow reads long files (a few columns, millions of rows) fast and compactly; a wide file
# of thousands of columns became thousands of small buffers per block: measured 4.7x the
# frame's size in RSS at 3,000 columns against 2.5x for pandas' reader, which reads those.
ARROW_MAX_COLUMNS = 64


# The sniffed bytes: at least this many, and then as many more as the header line needs
# (100,000 column names are about 700 kB), up to MAX_HEADER_BYTES.
SNIFF_BYTES = 65536
MAX_HEADER_BYTES = 64 * 2**20


# The bytes of a pipe being read (`--data <(zcat big.csv.gz)`, a named FIFO, /dev/stdin): a pipe
# can be read once, and the readers below open the file several times (sniffing, reading,
# the id column as text). `spool` reads it once and they read these bytes instead.
_SPOOLED: dict[Path, bytes] = {}
SPOOL_BLOCK = 1 << 20


def is_pipe(path: str | Path) -> bool:
    """Whether `path` (links followed) is a FIFO, socket or character device: readable once, as it comes."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


@contextmanager
def spool(path: str | Path) -> Iterator[None]:
    """For the block, every reader of `path` reads the bytes a pipe there gave, read once.

    A regular file is read where it lies, as before. The pipe's bytes are held in memory
    (checked against the memory available as they come, like a file's size).
    """
    path = Path(path)
    if path in _SPOOLED or not is_pipe(path):
        yield
        return
    have = available_memory()
    limit = None if have is None else have // MEMORY_PER_FILE_BYTE
    chunks, size = [], 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(SPOOL_BLOCK):
                chunks.append(block)
                size += len(block)
                if limit is not None and size > limit:
                    mb = 1024 * 1024
                    raise InputError(f"{path}: more than {size / mb:,.0f} MB came through the pipe, and loading "
                                     f"them needs more memory than the {have / mb:,.0f} MB available; "
                                     "split the data or drop columns")
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc}); check the path") from None
    _SPOOLED[path] = b"".join(chunks)
    del chunks
    try:
        yield
    finally:
        del _SPOOLED[path]


def source(path: Path) -> Any:
    """What a reader opens for `path`: the path, or a fresh buffer over a spooled pipe's bytes."""
    return io.BytesIO(_SPOOLED[path]) if path in _SPOOLED else path


def file_size(path: Path) -> int:
    return len(_SPOOLED[path]) if path in _SPOOLED else path.stat().st_size


def _head(path: Path) -> bytes:
    """The file's first SNIFF_BYTES, extended to the end of the header line (UTF-8 or UTF-16)."""
    with (source(path) if path in _SPOOLED else path.open("rb")) as handle:
        head = handle.read(SNIFF_BYTES)
        while b"\n" not in head[1:] and len(head) < MAX_HEADER_BYTES:  # [1:]: UTF-16-BE "\0\n" needs a byte before
            more = handle.read(len(head))
            if not more:
                break
            head += more
    return head


def _sniff(path: Path) -> tuple[str, str, str, list[str]]:
    """Encoding, delimiter, decimal mark and raw header names, from the file's first bytes.

    The whole header line is read, however long: a name cut off at the end of a fixed-size
    sample looked like a duplicate of a shorter one ('c10' of 'c10947').
    """
    head = _head(path)
    sample = head[:4096]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
        text = head.decode("utf-16", errors="ignore")
    elif len(sample) >= 4 and sample[1::2].count(0) > 0.4 * len(sample) / 2 and not sample[0::2].count(0):
        encoding = "utf-16-le"  # UTF-16 without a byte-order mark: every other byte of ASCII text is zero
        text = head.decode(encoding, errors="ignore")
    elif len(sample) >= 4 and sample[0::2].count(0) > 0.4 * len(sample) / 2 and not sample[1::2].count(0):
        encoding = "utf-16-be"
        text = head.decode(encoding, errors="ignore")
    else:
        encoding = "utf-8-sig"
        text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    first = text.splitlines()[0] if text.strip() else ""
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    sep = max(counts, key=lambda d: counts[d]) if max(counts.values()) > 0 else ","
    # A semicolon file with digits like 3,5 uses the decimal comma.
    decimal = "," if sep == ";" and re.search(r"\d,\d", text) else "."
    header = next(csv.reader(io.StringIO(first), delimiter=sep), [])
    return encoding, sep, decimal, [h.strip() for h in header]


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable, capped by a cgroup limit; None if unknown."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's limit (cgroup v2)
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit.isdigit() and used.isdigit():
            found.append(int(limit) - int(used))
    except OSError:
        pass
    return max(min(found), 0) if found else None


def _check_memory(path: Path) -> None:
    """Fail before reading a file that would not fit: a clear message beats the OOM killer."""
    size = file_size(path)
    need = size * MEMORY_PER_FILE_BYTE
    have = available_memory()
    if have is not None and need > have:
        mb = 1024 * 1024
        raise InputError(
            f"{path}: {size / mb:,.0f} MB of CSV needs about {need / mb:,.0f} MB of memory to load and train on, "
            f"but {have / mb:,.0f} MB are available; split the file or drop columns"
        )


# What pandas' reader reads as missing (pandas.read_csv's default na_values).
_PANDAS_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


def _read_arrow(path: Path, encoding: str, sep: str, decimal: str, header: list[str]) -> pd.DataFrame | None:
    """The file read by pyarrow's multithreaded CSV reader, or None where it could read it
    differently from pandas' reader (which then reads it, with its error messages)."""
    if encoding != "utf-8-sig" or decimal != "." or not header or "" in header or len(set(header)) < len(header):
        return None
    if len(header) > ARROW_MAX_COLUMNS:
        return None
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    try:
        table = pacsv.read_csv(source(path), parse_options=pacsv.ParseOptions(delimiter=sep), convert_options=pacsv.ConvertOptions(
            null_values=_PANDAS_NA, strings_can_be_null=True, quoted_strings_can_be_null=True))
    except (pa.ArrowException, OSError, ValueError):
        return None
    names = [str(n).strip() for n in table.column_names]
    if "" in names or len(set(names)) < len(names):  # names the sniffed header did not show: pandas' reader names them
        return None
    # Offsets (its timestamps would be UTC, not the regular clock data.py picks), times of day,
    # all-empty columns: the pandas reader keeps them as data.py expects.
    plain = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_string,
             pa.types.is_large_string, pa.types.is_date32)
    for field in table.schema:
        naive_time = pa.types.is_timestamp(field.type) and field.type.tz is None
        if not (naive_time or any(check(field.type) for check in plain)):
            return None
    return table.to_pandas(date_as_object=False, self_destruct=True)


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file (pyarrow): typed columns, so no sniffing; same checks as a CSV after."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow; pip install 'lstmcast[parquet]'") from None
    try:
        table = pq.read_table(source(path))
    except PermissionError:
        raise InputError(f"{path}: permission denied; make the file readable") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable Parquet file ({detail})") from None
    return table.to_pandas(date_as_object=False, self_destruct=True)


def read_table(data: frames.Data, notes: list[str] | None = None) -> tuple[Path | frames.FrameLabel, pd.DataFrame]:
    """(what messages call it, the table) of a file (`read_csv`) or a pandas DataFrame, read alike."""
    if frames.is_frame(data):
        return frames.FRAME, _finish(frames.FRAME, frames.as_table(data), [], ".", notes)
    return Path(data), read_csv(data, notes)


def read_csv(path: str | Path, notes: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV with clear errors for the usual ways a file is unusable.

    `notes` gets a line for each column taken out or read differently (`data.exported`).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a CSV file")
    if is_pipe(path) and path not in _SPOOLED:  # read once; every reader below reads those bytes
        with spool(path):
            return read_csv(path, notes)
    _check_memory(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _finish(path, read_parquet(path), [], ".", notes)
    try:
        encoding, sep, decimal, header = _sniff(path)
        spooled = (lambda: source(path)) if path in _SPOOLED else path
        df = read_streaming(spooled, encoding, sep, decimal, header, _PANDAS_NA, MAX_MAGNITUDE, file_size(path))  # large files
        if df is None:
            df = _read_arrow(path, encoding, sep, decimal, header)
        if df is not None:
            return _finish(path, df, header, decimal, notes)
        with warnings.catch_warnings():
            # index_col=False: a first row with one field too many must not silently turn the
            # first column into the index and shift every column by one.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(source(path), sep=sep, decimal=decimal, encoding=encoding, skipinitialspace=True,
                             index_col=False)
    except pd.errors.ParserWarning:
        raise InputError(
            f"{path}: line 2 has more fields than the header's {len(header)}; fix the ragged rows or the header"
        ) from None
    except PermissionError:
        raise InputError(f"{path}: permission denied; make the file readable") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty; give a CSV with a header row and data") from None
    except (pd.errors.ParserError, UnicodeError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable CSV ({detail}); save it as UTF-8 CSV") from None
    return _finish(path, df, header, decimal, notes)


def text_column(path: str | Path, df: pd.DataFrame, col: str) -> pd.Series:
    """Column `col` of the file read by `read_csv`, as the text the file holds: series ids.

    An id is data, not a number or a missing-value word: `007` stays `007` (not 7), `NA`
    (Namibia) stays `NA`, and ` padded ` keeps its spaces. Only an empty field is missing
    (NaN). The CSV's column is read again for this, with nothing parsed; a Parquet
    file's typed column is written as text (an integer 7 is `7`).
    """
    if isinstance(path, frames.FrameLabel) or Path(path).suffix.lower() in PARQUET_SUFFIXES:
        return _as_text(df[col])
    path = Path(path)
    encoding, sep, _decimal, header = _sniff(path)
    if header.count(col) != 1:
        return _as_text(df[col])
    try:
        raw = pd.read_csv(source(path), sep=sep, encoding=encoding, usecols=[header.index(col)], dtype=str,
                          keep_default_na=False, na_filter=False, index_col=False, skipinitialspace=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeError, ValueError):
        return _as_text(df[col])
    if len(raw) != len(df) or raw.shape[1] != 1:  # lines the two readers split differently: keep the first read
        return _as_text(df[col])
    text = raw.iloc[:, 0]
    text = text.where(text != "")  # missing: an empty field, nothing else
    text.index, text.name = df.index, col
    return text


def _as_text(column: pd.Series) -> pd.Series:
    """A typed column as text, missing where it is missing."""
    return column.astype(str).where(column.notna())


def _finish(path: Path | frames.FrameLabel, df: pd.DataFrame, header: list[str], decimal: str,
            notes: list[str] | None) -> pd.DataFrame:
    if df.empty:
        raise InputError(f"{path}: no data rows below the header; add data")
    df.columns = [str(c).strip() for c in df.columns]
    # pandas renames a repeated header 'a' to 'a.1': check the names as written (a frame's own names as they are).
    names = header or list(df.columns)
    dupes = sorted(c for c, k in Counter(names).items() if c and k > 1)  # Counter: 10,000 columns are common
    if dupes:
        raise InputError(f"{path}: duplicate column names {dupes}; rename them so each is unique")
    notes = [] if notes is None else notes
    return exported.read_thousands(exported.drop_unnamed(df, notes), decimal, notes)
