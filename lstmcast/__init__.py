"""lstmcast: forecast CSV time series with a stacked LSTM.

The public Python API mirrors the command line::

    from lstmcast import train, predict, evaluate

Heavy modules (torch, pandas) load on first use, so `import lstmcast` and
`lstmcast --help` stay fast.
"""

from __future__ import annotations

from typing import Any

from lstmcast.version import __version__

__all__ = ["__version__", "train", "predict", "evaluate", "LstmcastError"]


def __getattr__(name: str) -> Any:
    if name in ("train", "predict", "evaluate"):
        from lstmcast import api

        return getattr(api, name)
    if name == "LstmcastError":
        from lstmcast.errors import LstmcastError

        return LstmcastError
    raise AttributeError(f"module 'lstmcast' has no attribute {name!r}")
