"""Covariates and calendar features: the model's input channels besides the target.

Per step the encoder reads the target and, in this order,

    past covariates    (--past-covariates: observed up to the forecast origin only)
    static attributes  (--static: constant per series; numeric, or categorical one-hot)
    future covariates  (--future-covariates: known for the forecast period too)
    calendar features  (lstmcast.calendar: from the timestamps, with --calendar)

The last two groups are "known": the head also reads their values over the H forecast
steps (ModelConfig.known_size channels), so planned promotions or the hour of day of
each forecast step reach the forecast; past covariates enter the lookback window only.

Long layout: covariates are columns beside the target, one value per series and time.
Wide layout: past and future covariates are columns shared by every series (e.g. a
temperature driving every meter); static attributes need the long layout.

Past, future and numeric static columns are standardised with a mean and standard
deviation per column, fitted on the training part of every series (never the validation
tail) and stored in run.json's "covariates"; predict applies them with numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.data import calendar_features
from lstmcast.data.frames import label
from lstmcast.errors import InputError, RunDirError

_FLAGS = {"past": "--past-covariates", "future": "--future-covariates", "static": "--static"}


@dataclass
class Spec:
    """Which covariates a run reads and how they are scaled (run.json "covariates")."""

    past: tuple[str, ...] = ()
    future: tuple[str, ...] = ()
    static: tuple[str, ...] = ()
    levels: dict[str, list[str] | None] = field(default_factory=dict)  # static column -> categories, None: numeric
    calendar: tuple[str, ...] = ()
    center: list[float] = field(default_factory=list)  # past, future, numeric static columns, in that order
    scale: list[float] = field(default_factory=list)

    @property
    def dynamic(self) -> tuple[str, ...]:
        return self.past + self.future

    @property
    def numeric_static(self) -> list[str]:
        return [c for c in self.static if self.levels.get(c) is None]

    @property
    def channels(self) -> int:
        static = sum(1 if self.levels.get(c) is None else len(self.levels[c]) for c in self.static)
        return len(self.dynamic) + static + 2 * len(self.calendar)

    @property
    def known(self) -> int:
        return len(self.future) + 2 * len(self.calendar)

    def to_json(self) -> dict[str, Any]:
        return {"past": list(self.past), "future": list(self.future), "static": list(self.static),
                "levels": self.levels, "calendar": list(self.calendar), "center": self.center, "scale": self.scale,
                "channels": self.channel_names()}

    def channel_names(self) -> list[str]:
        static = [c if self.levels.get(c) is None else f"{c}={v}" for c in self.static for v in (self.levels.get(c) or [None])]
        return list(self.past) + static + list(self.future) + calendar_features.names(self.calendar)

    @classmethod
    def from_json(cls, data: Any, where: Path) -> Spec | None:
        """The spec of run.json's "covariates" (None when the run has none: runs before them)."""
        if data is None:
            return None
        try:
            spec = cls(past=tuple(data["past"]), future=tuple(data["future"]), static=tuple(data["static"]),
                       levels={str(k): None if v is None else [str(x) for x in v] for k, v in data["levels"].items()},
                       calendar=tuple(data["calendar"]), center=[float(x) for x in data["center"]],
                       scale=[float(x) for x in data["scale"]])
            ok = all(k in calendar_features.KINDS for k in spec.calendar) and \
                len(spec.center) == len(spec.scale) == len(spec.dynamic) + len(spec.numeric_static)
        except (KeyError, TypeError, ValueError, AttributeError):
            ok = False
        if not ok:
            raise RunDirError(f"{where}: invalid \"covariates\" entry; retrain the run")
        return spec


def _numeric(path: Path, series, col: str, flag: str) -> np.ndarray:
    from lstmcast.data.columns import to_numeric
    from lstmcast.data.timecol import require

    require(path, series.frame, col, flag)
    return to_numeric(path, series.frame, col, f" ({flag} column)")


class _Source:
    """The covariate columns of a loaded file, looked up per series and grid position."""

    def __init__(self, path: Path, series, spec: Spec) -> None:
        import pandas as pd

        self.path, self.series, self.spec = path, series, spec
        frame = series.frame
        self.values = np.stack([_numeric(path, series, c, _FLAGS["future" if c in spec.future else "past"])
                                for c in spec.dynamic], axis=1) if spec.dynamic else np.zeros((len(frame), 0))
        if series.layout == "long":
            ids = frame[series.id_col]  # the ids as written (data.series put the text column there)
            self.rows = {str(k): v for k, v in ids.groupby(ids, sort=False).indices.items()}
        else:
            self.rows = None
        t = series.times.to_numpy()
        self.times = pd.DatetimeIndex(t) if series.time_kind == "datetime" else pd.Index(t)

    def rows_of(self, sid: str) -> np.ndarray:
        if self.rows is None:
            return np.arange(len(self.series.frame))
        return self.rows.get(sid, np.zeros(0, np.int64))

    def dynamic(self, k: int, start: int, count: int) -> np.ndarray:
        """Raw past + future values of series k at grid positions start..start+count-1 (NaN: missing)."""
        import pandas as pd

        rows = self.rows_of(self.series.ids[k])
        grid = self.series.times_after(k, start, count)
        grid = pd.DatetimeIndex(grid) if self.series.time_kind == "datetime" else pd.Index(grid)
        frame = pd.DataFrame(self.values[rows], index=self.times[rows])
        frame = frame[~frame.index.duplicated()]
        return frame.reindex(grid).to_numpy(np.float64)

    def static(self, k: int) -> dict[str, Any]:
        import pandas as pd

        from lstmcast.data.timecol import require

        sid, out = self.series.ids[k], {}
        for col in self.spec.static:
            require(self.path, self.series.frame, col, "--static")
            values = self.series.frame[col].iloc[self.rows_of(sid)].dropna()
            distinct = pd.unique(values.astype(str).str.strip())
            if len(distinct) != 1:
                what = f"varies within series {sid!r} ({distinct[0]!r}, {distinct[1]!r})" if len(distinct) \
                    else f"is empty for series {sid!r}"
                raise InputError(f"{self.path}: static column {col!r} {what}; a --static attribute must be "
                                 "one value per series")
            out[col] = distinct[0]
        return out


def _filled(path: Path, raw: np.ndarray, cols: tuple[str, ...], sid: str) -> np.ndarray:
    """Missing values inside the history interpolated (constant at the ends)."""
    import pandas as pd

    empty = np.isnan(raw).all(axis=0)
    if len(raw) and empty.any():
        raise InputError(f"{path}: covariate column {cols[int(np.argmax(empty))]!r} has no values for series {sid!r}; "
                         "fill it in or drop the series")
    if not np.isnan(raw).any():
        return raw
    return pd.DataFrame(raw).interpolate(limit_direction="both").to_numpy(np.float64)


def _assemble(spec: Spec, dyn: np.ndarray, static: dict[str, Any], times) -> np.ndarray:
    """Scaled channels [len(dyn), channels] in the documented order."""
    m = len(dyn)
    center, scale = np.asarray(spec.center), np.asarray(spec.scale)
    n_dyn = len(spec.dynamic)
    scaled = (dyn - center[:n_dyn]) / scale[:n_dyn]
    parts = [scaled[:, :len(spec.past)]]
    j = n_dyn
    for col in spec.static:
        levels = spec.levels.get(col)
        if levels is None:
            try:
                value = float(static[col])
            except ValueError:
                value = math.nan
            value = 0.0 if not math.isfinite(value) else (value - center[j]) / scale[j]
            j += 1
            parts.append(np.full((m, 1), value))
        else:  # one-hot; a category training never saw is all zeros
            parts.append(np.tile((np.array(levels) == str(static[col])).astype(np.float64), (m, 1)))
    parts.append(scaled[:, len(spec.past):])
    if spec.calendar:
        parts.append(calendar_features.features(times, spec.calendar))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _stats(columns: np.ndarray) -> tuple[list[float], list[float]]:
    if columns.shape[1] == 0:
        return [], []
    center = np.nanmean(columns, axis=0) if len(columns) else np.zeros(columns.shape[1])
    spread = np.nanstd(columns, axis=0) if len(columns) else np.ones(columns.shape[1])
    center = np.where(np.isfinite(center), center, 0.0)
    spread = np.where(np.isfinite(spread) & (spread > 1e-12), spread, 1.0)
    return [float(x) for x in center], [float(x) for x in spread]


def prepare(path: Path, series, cfg, val_size: int) -> tuple[Spec | None, list[np.ndarray] | None, list[dict]]:
    """(spec, scaled channels per series [n_i, C], per-series meta to store) for training.

    None, None, [] when the run reads the target alone. Scaling is fitted on each
    series' first n_i - val_size steps only.
    """
    kinds = calendar_features.calendar_kinds(series.freq) if cfg.calendar and series.time_kind == "datetime" else ()
    spec = Spec(past=tuple(cfg.past_covariates), future=tuple(cfg.future_covariates), static=tuple(cfg.static),
                calendar=kinds)
    if not spec.dynamic and not spec.static and not kinds:
        return None, None, [{} for _ in series.ids]
    both = sorted(set(spec.past) & set(spec.future))
    if both:
        raise InputError(f"{path}: column {both[0]!r} is in both --past-covariates and --future-covariates; pick one")
    if spec.static and series.layout != "long":
        raise InputError(f"{path}: --static needs the long layout (id, time, value and attribute columns); "
                         "in the wide layout each column is a series: pass --id-col with a long file")
    dyn, statics = [], []
    if spec.dynamic or spec.static:
        source = _Source(path, series, spec)
        for k, sid in enumerate(series.ids):
            n = len(series.values[k])
            dyn.append(_filled(path, source.dynamic(k, 0, n), spec.dynamic, sid) if spec.dynamic
                       else np.zeros((n, 0)))
            statics.append(source.static(k))
    else:
        dyn = [np.zeros((len(v), 0)) for v in series.values]
        statics = [{} for _ in series.ids]
    train_part = np.concatenate([d[: max(len(d) - val_size, 0)] for d in dyn])
    spec.center, spec.scale = _stats(train_part)
    for col in spec.static:
        raw = [s[col] for s in statics]
        try:
            numbers = np.array([float(v) for v in raw])
        except ValueError:
            spec.levels[col] = sorted(set(map(str, raw)))
            continue
        spec.levels[col] = None
        c, s = _stats(numbers[:, None])
        spec.center.append(c[0])
        spec.scale.append(s[0])
    channels, metas, same = [], [], {}
    for k, sid in enumerate(series.ids):
        n = len(series.values[k])
        # Calendar channels alone depend on the times only: series with the same times share one array.
        key = (series.starts[k], n) if not spec.dynamic and not spec.static else k
        if key not in same:
            same[key] = _assemble(spec, dyn[k], statics[k], series.times_after(k, 0, n) if kinds else None)
        channels.append(same[key])
        meta: dict[str, Any] = {}
        if spec.dynamic:
            meta["cov_tail"] = dyn[k].tolist()  # trimmed to the lookback by the caller
        if spec.static:
            meta["static"] = statics[k]
        metas.append(meta)
    return spec, channels, metas


def describe(spec: Spec) -> str:
    """The note train prints: which channels the run reads besides the target."""
    groups = [(name, list(getattr(spec, name))) for name in ("past", "future", "static", "calendar")]
    return "inputs besides the target: " + "; ".join(f"{name} {cols}" for name, cols in groups if cols)


def for_forecast(run, series, ends: list[int], steps: int, data) -> np.ndarray | None:
    """Scaled channels [S, L + ceil(steps / H) * H, C] from each series' forecast origin back L steps.

    `series` is the file read for predict/evaluate (None: the run's stored tails), `ends`
    the history length of each series. InputError when future covariates are missing.
    """
    import pandas as pd

    spec = run.record.covariates
    if spec is None:
        return None
    cfg = run.model_config
    lookback, horizon = cfg.lookback, cfg.horizon
    ahead = -(-steps // horizon) * horizon
    if spec.past and steps > horizon:
        raise InputError(f"--horizon {steps}: this run reads past covariates, unknown beyond its trained horizon "
                         f"{horizon}; forecast at most {horizon} steps")
    freq = run.record.data.freq
    out = []
    if series is None:
        if spec.future:
            raise InputError(f"this run reads future covariates {list(spec.future)}: pass --data with each series' "
                             f"history and the next {ahead} steps of those columns")
        for s in run.record.series:
            tail = np.asarray(s.cov_tail or [], np.float64).reshape(lookback, len(spec.dynamic))
            dyn = np.concatenate([tail, np.zeros((ahead, tail.shape[1]))])
            times = None
            if spec.calendar:
                last = pd.Timestamp(s.last_time)
                times = pd.date_range(end=last, periods=lookback, freq=freq).append(
                    pd.date_range(last, periods=ahead + 1, freq=freq)[1:])
            out.append(_assemble(spec, dyn, s.static or {}, times))
        return np.stack(out)
    source = _Source(label(data), series, spec) if spec.dynamic or spec.static else None
    for k, sid in enumerate(series.ids):
        end = ends[k]
        dyn = np.zeros((lookback + ahead, len(spec.dynamic)))
        if spec.dynamic:
            dyn[:lookback] = _filled(label(data), source.dynamic(k, end - lookback, lookback), spec.dynamic, sid)
        if spec.future:
            fut = source.dynamic(k, end, ahead)[:, len(spec.past):]
            missing = np.isnan(fut)
            if missing.any():
                col, first = int(np.argmax(missing.any(axis=0))), int(np.argmax(missing.any(axis=1)))
                when = series.times_after(k, end + first, 1)[0]
                raise InputError(
                    f"{label(data)}: future covariate {spec.future[col]!r} of series {sid!r} is missing for "
                    f"{int(missing[:, col].sum())} of the {ahead} steps after its history (first: {when}); "
                    f"add rows for the next {ahead} steps with every --future-covariates column (target empty)")
            dyn[lookback:, len(spec.past):] = fut
        static = source.static(k) if spec.static else {}
        times = series.times_after(k, end - lookback, lookback + ahead) if spec.calendar else None
        out.append(_assemble(spec, dyn, static, times))
    return np.stack(out)


def history_channels(run, series, data) -> list[np.ndarray] | None:
    """Scaled channels of each series over its whole history [n_i, C] (None: the run has none).

    For scoring many forecast origins at once (benchmarks): origin t reads rows t - L .. t + H - 1.
    """
    spec = run.record.covariates
    if spec is None:
        return None
    source = _Source(label(data), series, spec) if spec.dynamic or spec.static else None
    out = []
    for k, sid in enumerate(series.ids):
        n = len(series.values[k])
        dyn = _filled(label(data), source.dynamic(k, 0, n), spec.dynamic, sid) if spec.dynamic else np.zeros((n, 0))
        times = series.times_after(k, 0, n) if spec.calendar else None
        out.append(_assemble(spec, dyn, source.static(k) if spec.static else {}, times))
    return out
