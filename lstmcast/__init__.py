"""lstmcast: forecast CSV time series with a stacked LSTM.

The public Python API mirrors the command line::

    from lstmcast import train, predict, evaluate, backtest, detect

Each takes a file path or a pandas DataFrame wherever a data file is taken.
Heavy modules (torch, pandas) load on first use, so `import lstmcast` and
`lstmcast --help` stay fast.

`lstmcast.train`, `lstmcast.evaluate` and `lstmcast.detect` are the functions, always:
the subpackages of the same names (`from lstmcast.train import loop`) are reached by
import, not as attributes of the package.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from lstmcast.version import __version__

API = ("train", "resume", "predict", "evaluate", "backtest", "detect")
__all__ = ["__version__", *API, "LstmcastError"]


def _api_function(name: str) -> property:
    """The package attribute `name`: api.`name`, loaded on first use. Importing the subpackage
    `lstmcast.<name>` sets the attribute to the subpackage; the setter ignores that, so the
    name keeps meaning the function (the subpackage stays in sys.modules for imports)."""

    def get(module: types.ModuleType) -> Any:
        from lstmcast import api

        return getattr(api, name)

    def ignore(module: types.ModuleType, value: Any) -> None:
        if not isinstance(value, types.ModuleType):
            raise AttributeError(f"lstmcast.{name} is the API function; it cannot be replaced")

    return property(get, ignore)


class _Package(types.ModuleType):
    """The lstmcast package, with the API functions as attributes no subpackage can hide."""


for _name in API:
    setattr(_Package, _name, _api_function(_name))
sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name == "LstmcastError":
        from lstmcast.errors import LstmcastError

        return LstmcastError
    raise AttributeError(f"module 'lstmcast' has no attribute {name!r}")
