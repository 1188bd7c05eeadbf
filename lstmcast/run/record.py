"""run.json as a typed record: the one place that turns the file into objects and back.

    RunRecord
      model    ModelConfig            rebuilds the network
      train    TrainConfig            how it was trained (val_size resolved)
      data     DataRecord             how the file was read, and what predict writes
      series   tuple[SeriesRecord]    per series: scaler, length, last time, the last lookback values
      covariates, intervals           their owners' JSON (data.covariates.Spec, model.intervals)
      recipe   train.recipe.Recipe    what the data decided and why: a record; a resume reads its member lookbacks

`RunRecord.from_json` reads every format version since 1 and checks everything it
reads: a missing field, a wrong type, a number that is not finite, a size beyond
`LIMITS`, a frequency pandas does not know or a time that does not parse is a
`RunDirError` naming run.json and the field. `to_json` writes what `train` has always
written, key for key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.config import (LEGACY_MODEL_FIELDS, TRAIN_LIMITS, DataConfig, ModelConfig, TrainConfig, from_json_dict,
                             to_json_dict, train_problem)
from lstmcast.errors import RunDirError
from lstmcast.train.recipe import FIELDS as RECIPE_FIELDS
from lstmcast.train.recipe import Recipe
from lstmcast.version import __version__

FORMAT_VERSION = 1
RUN_JSON = "run.json"
TIME_KINDS = ("datetime", "integer", "row")
LAYOUTS = ("wide", "long")
# Sizes no trained run reaches: a run.json beyond them is corrupt or hostile, and is refused
# before anything is allocated or looped over.
LIMITS = {"lookback": 100_000, "horizon": 100_000, "input_size": 10_000, "hidden": 16_384, "layers": 64,
          "known_size": 10_000, "members": 100}
# The recipe's numbers, bounded as the model and train fields they were applied to; a season is at most a
# day of seconds (data.frequency.season_length). Sources are short phrases.
RECIPE_LIMITS = {"horizon": LIMITS["horizon"], "val_size": TRAIN_LIMITS["val_size"], "season": 86_400,
                 "lookback": LIMITS["lookback"], "forking": TRAIN_LIMITS["forking"],
                 "batch_size": TRAIN_LIMITS["batch_size"], "epoch_steps": TRAIN_LIMITS["epoch_steps"],
                 "epochs": TRAIN_LIMITS["epochs"], "patience": TRAIN_LIMITS["patience"], "members": LIMITS["members"]}
RECIPE_UNSIZED = ("batch_size", "epoch_steps")  # None in a refit of a run from before sized budgets
MAX_SOURCE = 200


class _Bad(Exception):
    """A field of run.json that is missing or wrong: (field path, what is wrong)."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(where, what)
        self.where, self.what = where, what


def _get(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise _Bad(f"{where}{key}" if where else key, "missing")
    return obj[key]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(where, f"not a finite number ({value!r})")
    return float(value)


def _integer(value: Any, where: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _Bad(where, f"not an integer >= {low} ({value!r})")
    return value


def _text(value: Any, where: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Bad(where, f"not a string ({value!r})")
    return value


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(where, "not a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class DataRecord:
    """How the training file was read (`config`, with the columns and frequency resolved) and what
    predict writes: the id and time column names of its output."""

    config: DataConfig
    source: str
    layout: str  # "wide" | "long"
    time_kind: str  # "datetime" | "integer" | "row"
    step: int
    season: int
    output_id_col: str
    output_time_col: str
    target_given: bool | None = None  # None: written before the field existed (0.1.0)

    @property
    def freq(self) -> str | None:
        return self.config.freq

    def read_config(self) -> DataConfig:
        """The DataConfig that reads new data as training read its file.

        Long files, runs given --target, and runs from before `target_given` was recorded read
        exactly the trained value columns; a wide run that took every numeric column does so again.
        """
        pinned = self.layout == "long" or self.target_given is not False
        return replace(self.config, target=self.config.target if pinned and self.config.target else None)

    def to_json(self) -> dict[str, Any]:
        out = {**to_json_dict(self.config), "source": self.source, "layout": self.layout,
               "target": list(self.config.target or ())}
        if self.target_given is not None:
            out["target_given"] = self.target_given
        out.update(time_kind=self.time_kind, step=self.step, season=self.season, output_id_col=self.output_id_col,
                   output_time_col=self.output_time_col)
        return out

    @classmethod
    def from_json(cls, d: Any) -> DataRecord:
        if not isinstance(d, Mapping):
            raise _Bad("data", "not an object")
        try:
            config = from_json_dict(DataConfig, {"nonnegative": False, **d})  # runs before clipping: none
        except (TypeError, ValueError, AttributeError) as exc:
            raise _Bad("data", f"invalid ({exc})") from None
        for name in ("id_col", "time_col", "freq"):
            _text(getattr(config, name), f"data.{name}", optional=True)
        target = _texts(_get(d, "target", "data."), "data.target")
        for name in ("past_covariates", "future_covariates", "static"):
            _texts(list(getattr(config, name)), f"data.{name}")
        if not isinstance(config.calendar, bool):
            raise _Bad("data.calendar", "not true or false")
        layout = _get(d, "layout", "data.")
        if layout not in LAYOUTS:
            raise _Bad("data.layout", f"not one of {list(LAYOUTS)} ({layout!r})")
        kind = _get(d, "time_kind", "data.")
        if kind not in TIME_KINDS:
            raise _Bad("data.time_kind", f"not one of {list(TIME_KINDS)} ({kind!r})")
        if kind == "datetime":
            _check_freq(config.freq)
        given = d.get("target_given")
        if given is not None and not isinstance(given, bool):
            raise _Bad("data.target_given", "not true or false")
        return cls(
            config=replace(config, target=target), source=_text(d.get("source", ""), "data.source"), layout=layout,
            time_kind=kind, step=_integer(d.get("step", 1), "data.step", 1),
            season=_integer(d.get("season") or 1, "data.season", 1),
            output_id_col=_text(_get(d, "output_id_col", "data."), "data.output_id_col"),
            output_time_col=_text(_get(d, "output_time_col", "data."), "data.output_time_col"), target_given=given,
        )


def _check_freq(freq: Any) -> None:
    import pandas as pd

    if not isinstance(freq, str):
        raise _Bad("data.freq", f"missing for a datetime time axis ({freq!r})")
    try:
        pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        raise _Bad("data.freq", f"not a pandas frequency ({freq!r})") from None


@dataclass(frozen=True)
class SeriesRecord:
    """One series as training left it: scaler, length, last time and the last `lookback` values."""

    id: str
    center: float
    scale: float
    length: int
    last_time: str | int  # ISO timestamp (datetime axis) or integer step
    tail: np.ndarray  # float64 [>= lookback]
    cov_tail: list[list[float]] | None = None  # the last lookback rows of the covariate columns
    static: dict[str, Any] | None = None  # static covariate values
    nonnegative: bool = False  # every training value was >= 0: forecasts are clipped at 0 (absent in old runs)
    log: bool = False  # modelled in logs (`--transform`): the scaler is of the log values (absent: not)

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "center": self.center, "scale": self.scale, "length": self.length,
               "last_time": self.last_time, "tail": [float(v) for v in self.tail]}
        if self.cov_tail is not None:
            out["cov_tail"] = self.cov_tail
        if self.static is not None:
            out["static"] = self.static
        if self.nonnegative:
            out["nonnegative"] = True
        if self.log:
            out["log"] = True
        return out

    @classmethod
    def from_json(cls, s: Any, k: int, kind: str, lookback: int) -> SeriesRecord:
        where = f"series[{k}]."
        if not isinstance(s, Mapping):
            raise _Bad(f"series[{k}]", "not an object")
        sid = _text(_get(s, "id", where), where + "id")
        where = f"series[{k}] ({sid!r})."
        center = _number(_get(s, "center", where), where + "center")
        scale = _number(_get(s, "scale", where), where + "scale")
        if scale <= 0:
            raise _Bad(where + "scale", f"not positive ({scale!r})")
        raw_tail = _get(s, "tail", where)
        if not isinstance(raw_tail, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                     for v in raw_tail):
            raise _Bad(where + "tail", "not a list of numbers")
        tail = np.asarray(raw_tail, dtype=np.float64)
        if not np.isfinite(tail).all():
            raise _Bad(where + "tail", "holds a value that is not a finite number")
        if len(tail) < lookback:
            raise _Bad(where + "tail", f"has {len(tail)} values, fewer than the lookback {lookback}")
        last = _get(s, "last_time", where)
        if kind == "datetime":
            _check_time(_text(last, where + "last_time"), where + "last_time")
        elif isinstance(last, bool) or not isinstance(last, int):
            raise _Bad(where + "last_time", f"not an integer step ({last!r})")
        cov_tail, static = s.get("cov_tail"), s.get("static")
        if cov_tail is not None and not isinstance(cov_tail, list):
            raise _Bad(where + "cov_tail", "not a list")
        if static is not None and not isinstance(static, Mapping):
            raise _Bad(where + "static", "not an object")
        nonnegative = s.get("nonnegative", False)
        if not isinstance(nonnegative, bool):
            raise _Bad(where + "nonnegative", "not true or false")
        log = s.get("log", False)
        if not isinstance(log, bool):
            raise _Bad(where + "log", "not true or false")
        if log and not (tail > 0).all():
            raise _Bad(where + "tail", "holds a value of 0 or less in a series modelled in logs")
        return cls(id=sid, center=center, scale=scale, length=_integer(s.get("length", len(tail)), where + "length"),
                   last_time=last, tail=tail, cov_tail=cov_tail, static=None if static is None else dict(static),
                   nonnegative=nonnegative, log=log)


def _check_time(text: str, where: str) -> None:
    import pandas as pd

    try:
        pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        raise _Bad(where, f"not a timestamp ({text!r})") from None


@dataclass(frozen=True)
class RunRecord:
    """Everything run.json holds. Build one in `train`, write it with `to_json`, read it with `from_json`."""

    model: ModelConfig
    train: TrainConfig
    data: DataRecord
    series: tuple[SeriesRecord, ...]
    created: str = ""
    covariates: Any = None  # data.covariates.Spec; None: the target alone
    intervals: Mapping[str, Any] | None = None  # the calibration model.intervals wrote; None without quantiles
    recipe: Recipe | None = None  # None: a run written before the recipe was recorded
    format_version: int = FORMAT_VERSION
    lstmcast_version: str = __version__
    _by_id: dict[str, SeriesRecord] = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.id: s for s in self.series})

    def get(self, sid: str) -> SeriesRecord | None:
        """The stored series of that id, or None for a series training never saw."""
        return self._by_id.get(sid)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.series]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format_version": self.format_version, "lstmcast_version": self.lstmcast_version, "created": self.created,
            "model": to_json_dict(self.model), "train": to_json_dict(self.train), "data": self.data.to_json(),
            "series": [s.to_json() for s in self.series],
        }
        if self.covariates is not None:
            out["covariates"] = self.covariates.to_json()
        if self.intervals is not None:
            out["intervals"] = dict(self.intervals)
        if self.recipe is not None:
            out["recipe"] = self.recipe.to_json()
        return out

    @classmethod
    def from_json(cls, meta: Any, path: Path) -> RunRecord:
        """The record of run.json at `path`; RunDirError naming the field when anything is wrong."""
        if not isinstance(meta, Mapping):
            raise RunDirError(f"{path}: corrupt (not a JSON object); retrain or restore the run")
        version = meta.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise RunDirError(f"{path}: corrupt (no format_version); retrain or restore the run")
        if version > FORMAT_VERSION:
            raise RunDirError(f"{path}: format version {version} is newer than this lstmcast reads "
                              f"({FORMAT_VERSION}); upgrade lstmcast")
        for key in ("model", "train", "data", "series"):
            if key not in meta:
                raise RunDirError(f"{path}: corrupt (no {key!r}); retrain or restore the run")
        model = _model(meta["model"], path)
        try:
            train = _train(meta["train"])
            data = DataRecord.from_json(meta["data"])
            raw = meta["series"]
            if not isinstance(raw, list) or not raw:
                raise _Bad("series", "not a non-empty list")
            series = tuple(SeriesRecord.from_json(s, k, data.time_kind, model.lookback) for k, s in enumerate(raw))
            if len({s.id for s in series}) != len(series):
                raise _Bad("series", "holds the same id twice")
            covariates = _covariates(meta.get("covariates"), path)
            intervals = meta.get("intervals")
            if intervals is not None and not isinstance(intervals, Mapping):
                raise _Bad("intervals", "not an object")
            recipe = _recipe(meta.get("recipe"))
        except _Bad as bad:
            raise RunDirError(f"{path}: field {bad.where!r} is {bad.what}; retrain or restore the run") from None
        return cls(model=model, train=train, data=data, series=series, created=str(meta.get("created", "")),
                   covariates=covariates, intervals=intervals, recipe=recipe, format_version=version,
                   lstmcast_version=str(meta.get("lstmcast_version", "")))


def _model(d: Any, path: Path) -> ModelConfig:
    if not isinstance(d, Mapping):
        raise RunDirError(f"{path}: invalid model config (not an object); retrain the run")
    for name, limit in LIMITS.items():  # before ModelConfig: sizes are checked before anything uses them
        value = d.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit:
            raise RunDirError(f"{path}: invalid model config ({name} {value!r} is above the limit {limit}); "
                              "retrain the run")
    try:
        return from_json_dict(ModelConfig, {**LEGACY_MODEL_FIELDS, **d})
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise RunDirError(f"{path}: invalid model config ({exc}); retrain the run") from None


def _train(d: Any) -> TrainConfig:
    if not isinstance(d, Mapping):
        raise _Bad("train", "not an object")
    try:
        # runs before transforms read as none, runs before MASE weights as unweighted, runs before the
        # full-data refit as trained on the held-out split
        cfg = from_json_dict(TrainConfig, {"transform": "none", "mase_weight": 0.0, "full_data": "off", **d})
    except (TypeError, ValueError, AttributeError) as exc:
        raise _Bad("train", f"invalid ({exc})") from None
    problem = train_problem(cfg)  # every field that sizes a refit or a resumed training, bounded
    if problem is not None:
        raise _Bad(f"train.{problem[0]}", problem[1])
    return cfg


def _recipe(d: Any) -> Recipe | None:
    """run.json's "recipe" (None in runs written before it): per field a value within `RECIPE_LIMITS` and
    a source. Unknown fields are left out, as in the configs."""
    if d is None:
        return None
    if not isinstance(d, Mapping):
        raise _Bad("recipe", "not an object")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in RECIPE_FIELDS:
        where = f"recipe.{name}"
        entry = _get(d, name, "recipe.")
        if not isinstance(entry, Mapping):
            raise _Bad(where, "not an object")
        source = _text(_get(entry, "source", f"{where}."), f"{where}.source")
        if len(source) > MAX_SOURCE:
            raise _Bad(f"{where}.source", f"longer than {MAX_SOURCE} characters")
        value = _get(entry, "value", f"{where}.")
        if name == "full_data":
            if not isinstance(value, bool):
                raise _Bad(f"{where}.value", f"not true or false ({value!r})")
        elif name in ("dilations", "member_lookbacks"):
            value = _lookback_list(value, f"{where}.value", values["lookback"],
                                   LIMITS["layers" if name == "dilations" else "members"])
        elif value is not None or name not in RECIPE_UNSIZED:
            high = RECIPE_LIMITS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise _Bad(f"{where}.value", f"not an integer in [1, {high:,}] ({value!r})")
        values[name], sources[name] = value, source
    return Recipe(**values, sources=sources)


def _lookback_list(value: Any, where: str, lookback: int, most: int) -> tuple[int, ...]:
    """Dilations or member lookbacks: at most `most` integers in [1, lookback]."""
    if not isinstance(value, list) or len(value) > most or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= lookback for v in value):
        raise _Bad(where, f"not a list of at most {most} integers in [1, lookback {lookback}]")
    return tuple(value)


def _covariates(data: Any, path: Path) -> Any:
    if data is None:
        return None
    from lstmcast.data.covariates import Spec

    return Spec.from_json(data, path)
