"""`--config lstmcast.toml`: option defaults from a TOML file, read with `tomllib`.

Top-level keys apply to every command that has that option; a `[train]`, `[predict]`
or `[evaluate]` table applies to that command only and wins over the top level.
Options given on the command line win over both. Keys are option names with `_` or
`-` (`run_dir` or `run-dir`); a key that no command knows is an error that names it.
Paths are relative to the current directory, as on the command line.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lstmcast.errors import InputError

# Never read from a file: they say how a file is read or are one-off actions.
NOT_IN_FILE = frozenset({"config", "resume", "help"})


def _key(name: str) -> str:
    return name.replace("-", "_")


def _value(path: Path, where: str, key: str, value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)  # target = ["a", "b"] is --target a,b
    if isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ",".join(repr(v) for v in value)  # quantiles = [0.1, 0.5, 0.9] is --quantiles 0.1,0.5,0.9
    if isinstance(value, (dict, list)) or not isinstance(value, (str, int, float, bool)):
        raise InputError(f"{path}: {where}{key} must be a string, number or true/false, not {type(value).__name__}")
    return value


def load_defaults(path: str | Path, command: str, options: Mapping[str, set[str]]) -> dict[str, Any]:
    """The option defaults `path` gives `command`.

    Args:
        path: the TOML file.
        command: the command being run (train, predict, evaluate).
        options: every command's option names, {command: {name, ...}}.
    """
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found; check the --config path") from None
    except (OSError, UnicodeError) as exc:
        raise InputError(f"{path}: cannot read the config file ({exc}); save it as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib parses nested arrays recursively: [[[[...]]]] 5,000 deep
        raise InputError(f"{path}: not a usable config file (values nested too deeply); "
                         "give option = value lines (see lstmcast COMMAND --help)") from None
    known_anywhere = set().union(*options.values()) - NOT_IN_FILE
    tables = {k: v for k, v in doc.items() if isinstance(v, dict)}
    top = {_key(k): v for k, v in doc.items() if not isinstance(v, dict)}
    unknown_tables = sorted(set(tables) - set(options))
    if unknown_tables:
        raise InputError(f"{path}: unknown tables {unknown_tables}; use [{'], ['.join(sorted(options))}]")
    unknown = sorted(k for k in top if k not in known_anywhere)
    if unknown:
        raise InputError(f"{path}: unknown keys {unknown}; valid keys are the command-line options, "
                         "e.g. 'epochs', 'run_dir' (see lstmcast COMMAND --help)")
    for table, values in tables.items():
        wrong = sorted(_key(k) for k in values if _key(k) not in options[table] - NOT_IN_FILE)
        if wrong:
            raise InputError(f"{path}: unknown keys {wrong} in [{table}]; valid keys are the options of "
                             f"'lstmcast {table}' (see lstmcast {table} --help)")
    mine = options.get(command, set())
    out = {k: _value(path, "", k, v) for k, v in top.items() if k in mine}
    for k, v in tables.get(command, {}).items():
        out[_key(k)] = _value(path, f"[{command}] ", _key(k), v)
    return out


def train_options(path: Path, data_config: Any, series: Any, model_config: Any, train_config: Any) -> dict[str, Any]:
    """The resolved `train` options of a run (detected columns, frequency, defaults), as config.toml saves them."""
    from lstmcast.config import to_json_dict

    out: dict[str, Any] = {"data": str(path)}
    out["id_col"] = series.id_col if series.layout == "long" else None
    out["time_col"] = None if series.time_kind == "row" else series.time_col
    pinned = data_config.target is not None or series.layout == "long"
    out["target"] = ",".join(series.target_cols) if pinned else None
    out["freq"] = series.freq
    out["fill"] = data_config.fill.value
    for key in ("past_covariates", "future_covariates", "static"):
        out[key] = ",".join(getattr(data_config, key)) or None
    out["calendar"] = data_config.calendar
    out["date_format"] = data_config.date_format or (series.time_format if getattr(series, "time_format", None)
                                                     not in (None, "ISO8601") else None)
    out["dayfirst"] = data_config.dayfirst
    out["nonnegative"] = data_config.nonnegative
    model = to_json_dict(model_config)
    out.update({k: model[k] for k in ("horizon", "lookback", "hidden", "layers", "dropout", "window_norm", "skip", "cell",
                                    "bidirectional", "attention")})
    out["quantiles"] = ",".join(repr(q) for q in model_config.quantiles) or None
    out["dilations"] = ",".join(map(str, model_config.dilations)) or "none"  # as resolved: auto chose these
    tc = to_json_dict(train_config)
    out.update({k: tc[k] for k in ("val_size", "epochs", "epoch_steps", "max_steps", "batch_size", "time_limit", "ensemble", "lr", "schedule", "patience",
                                    "scaler", "transform", "loss", "mase_weight", "full_data", "forking", "seed", "device", "precision") if k in tc})
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def dumps(table: str, values: Mapping[str, Any], comment: str = "") -> str:
    """A TOML document with one table; None values are left out (TOML has no null)."""
    lines = [f"# {comment}"] if comment else []
    lines.append(f"[{table}]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"
