"""A pandas DataFrame given where a data file is taken: read as a CSV of the same table is.

A frame goes through the same layout detection and checks as a file; messages name it
`DataFrame` where they would name the file. Its index becomes a column when it carries
information (a name, or times: `df.set_index("date")`); a plain 0..n-1 index is dropped.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path, PurePosixPath
from typing import Any

Data = Any  # str | Path | pandas.DataFrame: what every API function takes as data


class FrameLabel(PurePosixPath):
    """What messages call a DataFrame in place of a file's path."""


FRAME = FrameLabel("DataFrame")


def is_frame(data: Data) -> bool:
    pd = sys.modules.get("pandas")  # not imported: nothing can be a DataFrame, and the CLI stays light
    return pd is not None and isinstance(data, pd.DataFrame)


def label(data: Data) -> Path | FrameLabel:
    """The path of a file, or FRAME for a DataFrame: what messages name."""
    return FRAME if is_frame(data) else Path(data)


def as_table(frame: Any) -> Any:
    """The frame as reading a CSV of it would give it: the index a column where it holds
    names or times, column names as text, periods as timestamps. The caller's frame is
    not changed."""
    import pandas as pd

    index = frame.index
    keep_index = (isinstance(index, pd.MultiIndex) or index.name is not None
                  or isinstance(index, (pd.DatetimeIndex, pd.PeriodIndex)))
    table = frame.reset_index(drop=not keep_index)
    table.columns = [str(c) for c in table.columns]
    for col, dtype in table.dtypes.items():
        if isinstance(dtype, pd.PeriodDtype):
            table[col] = table[col].dt.to_timestamp()
    return table


def digest(frame: Any) -> str:
    """A hash of the frame's columns, index and values: resume checks the data is the same."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(repr(list(map(str, frame.columns))).encode())
    h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()
