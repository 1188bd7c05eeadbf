"""What the benchmark scripts share: where the repository and the datasets are, timing, markdown tables.

Scripts run as `python benchmarks/NAME.py` with lstmcast installed (`python3 dev.py setup`),
so this folder is on sys.path and `import common` needs no path tricks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the repository, or $LSTMCAST_DATA_DIR (M4 scripts also read $M4_DATA_DIR).
DATA_DIR = Path(os.environ.get("LSTMCAST_DATA_DIR", REPO.parent / "shared" / "data"))


def data_file(name: str, data_dir: Path | None = None) -> Path:
    """A dataset file of ../shared/data; SystemExit with where it was looked for when it is absent."""
    path = (data_dir or DATA_DIR) / name
    if not path.is_file():
        raise SystemExit(f"{path}: not found; set LSTMCAST_DATA_DIR or pass --data-dir")
    return path


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """`with timed() as t: ...` then t["seconds"] holds the wall time of the block."""
    out: dict[str, float] = {}
    started = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - started


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table: the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
