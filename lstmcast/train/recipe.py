"""The recipe: every choice from the data to the training budget, resolved once, with where each came from.

    horizon (the frequency) ─> validation (one horizon; more for quantiles on few series) ─> season
      ─> lookback (the median series) ─> dilations (the season the data show) ─> forking (8 for short
      series, 1 if bidirectional) ─> full-data refit (the held-out share) ─> batch, steps per epoch, epochs,
      patience (the training windows) ─> members and their lookbacks (three for short series, --ensemble,
      or what a time limit fits)

The rules stay beside what they size (data.frequency, model.intervals, train.defaults); `resolve`
is the one place that applies them, for every `train_run` (train, resume, backtest refits). Each
field keeps its source: "given" (by the user, or by the stored run a resume or a refit trains
again), or the rule and why. run.json records the recipe under "recipe" and one note says it. The
model and train configs stay what rebuilds and retrains a run; only a resume reads the recipe back,
for the lookbacks of the members still to train.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.config import TIME_LIMIT_EPOCHS, Cell, TrainConfig
from lstmcast.errors import InputError

GIVEN = "given"


@dataclass(frozen=True)
class Recipe:
    """What `resolve` chose from the data, and where each choice came from."""

    horizon: int
    val_size: int
    season: int
    lookback: int
    dilations: tuple[int, ...]
    forking: int
    full_data: bool  # train again on every point after the held-out run
    batch_size: int | None  # None (with epoch_steps): a resumed or refitted run from before sized budgets
    epoch_steps: int | None
    epochs: int
    patience: int
    members: int  # planned; with a time limit, at most this many
    member_lookbacks: tuple[int, ...]  # what each planned member reads; () where all read `lookback`
    sources: Mapping[str, str]  # per field: "given", or the rule and why

    def train_config(self, given: TrainConfig) -> TrainConfig:
        """`given` with the recipe's validation, forking and budget: the config training runs with and
        run.json stores."""
        members = given.ensemble or (self.members if self.members > 1 and not given.time_limit else None)
        return replace(given, val_size=self.val_size, forking=self.forking, batch_size=self.batch_size,
                       epoch_steps=self.epoch_steps, epochs=self.epochs, patience=self.patience, ensemble=members)

    def lookbacks(self, members: int) -> tuple[int, ...]:
        """What each of the first `members` members reads: ModelConfig.member_lookbacks."""
        looks = self.member_lookbacks[:members]
        return looks if any(v != self.lookback for v in looks) else ()

    def kept(self, earlier: Recipe | None) -> Recipe:
        """`earlier`, the recipe of the run being resumed, where it made the same choices: the stored
        values a resume is given came from where it says."""
        return earlier if earlier is not None and replace(earlier, sources=self.sources) == self else self

    def note(self) -> str:
        """The one line that says the recipe; fields side by side that share a source say it once, after the last."""
        parts = []
        for name, after in zip(FIELDS, FIELDS[1:] + ("",)):
            source = self.sources[name]
            parts.append(_LABELS[name].format(_shown(getattr(self, name)))
                         + ("" if after and self.sources[after] == source else f" ({source})"))
        return "recipe: " + ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """run.json's "recipe": per field its value and source (read back by run.record)."""
        out = {}
        for name in FIELDS:
            value = getattr(self, name)
            out[name] = {"value": list(value) if isinstance(value, tuple) else value, "source": self.sources[name]}
        return out


FIELDS = tuple(f.name for f in fields(Recipe) if f.name != "sources")
_LABELS = {"horizon": "horizon {}", "val_size": "validation {}", "season": "season {}", "lookback": "lookback {}",
           "dilations": "dilations {}", "forking": "forking {}", "full_data": "full data {}", "batch_size": "batch {}",
           "epoch_steps": "{} steps/epoch", "epochs": "up to {} epochs", "patience": "patience {}",
           "members": "members {}", "member_lookbacks": "member lookbacks {}"}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"  # dilations, member lookbacks
    return "unsized" if value is None else str(value)


def resolve(path: Path, series: Any, horizon: int | None, lookback: int | None, arch: dict[str, Any],
            cfg: TrainConfig, covariates: bool, distributed: bool, keep: bool) -> tuple[Recipe, list[str]]:
    """The recipe for `series` (a data.series.SeriesSet), and the notes its rules wrote.

    Args:
        horizon, lookback: as given; None for the default.
        arch: the config.ARCH_FIELDS (dilations None: the auto rule), and "member_lookbacks" where a stored
            run gives them (a resume, a refit).
        cfg: the training options as given.
        covariates: channels beside the values, which are not padded: the shortest series bounds the lookback.
        distributed: under torchrun (no full-data refit).
        keep: a resumed run, or a refit of a run from before sized budgets: `cfg`'s budget as stored.

    Raises InputError where what was given does not fit the data.
    """
    from lstmcast.data.frequency import default_horizon, season_length
    from lstmcast.model import intervals
    from lstmcast.train import defaults

    notes: list[str] = []
    sources: dict[str, str] = {}
    by_frequency = f"frequency {series.freq}" if series.freq else "no frequency"
    lengths = [len(v) for v in series.values]
    horizon, sources["horizon"] = (horizon, GIVEN) if horizon else (default_horizon(series.freq), by_frequency)
    if cfg.val_size:
        val_size, sources["val_size"] = cfg.val_size, GIVEN
    else:
        val_size, why = intervals.default_val_size(lengths, horizon, lookback) if arch["quantiles"] else (horizon, None)
        sources["val_size"] = why or "one horizon"
        if why:
            notes.append(f"--val-size {val_size} ({why}): with {len(lengths)} series there are few validation "
                         "windows to calibrate the intervals on; set --val-size to choose")
    if val_size < horizon:
        raise InputError(f"--val-size {val_size} is shorter than --horizon {horizon}; use at least {horizon}")
    season, sources["season"] = season_length(series.freq), by_frequency
    lookback, sources["lookback"] = defaults.pick_lookback(lengths, series.ids, horizon, val_size, season, lookback,
                                                           path, notes, covariates)
    dilations, sources["dilations"] = defaults.pick_dilations(
        arch.get("dilations"), [v[:-val_size] for v in series.values], season, lookback, arch["layers"],
        Cell(arch["cell"]).value, arch["bidirectional"], notes)
    windows = defaults.median_origins(lengths, lookback, horizon, val_size)
    short = windows < defaults.SHORT_ORIGINS
    why_short = f"short series: under {defaults.SHORT_ORIGINS} training windows in the median one"
    if cfg.forking:
        forking, sources["forking"] = cfg.forking, GIVEN
    else:
        forking, sources["forking"] = (defaults.SHORT_FORKING, why_short) if short else \
            (defaults.DEFAULT_FORKING, "default")
    if arch["bidirectional"] and forking > 1:  # K origins would cost K backward passes
        notes.append(f"bidirectional: one origin per sequence (--forking {forking} -> 1)")
        forking, sources["forking"] = 1, "bidirectional: one origin per sequence"
    full, sources["full_data"] = defaults.use_full_data(cfg.full_data, lengths, val_size, bool(arch["quantiles"]),
                                                        covariates, distributed, notes)
    budget = _budget(cfg, forking, _train_windows(lengths, lookback, horizon, val_size), keep)
    sources.update({name: why for name, (_, why) in budget.items()})
    stored = arch.get("member_lookbacks")
    mixed = bool(stored) if stored is not None else short and sources["lookback"] != GIVEN
    members, sources["members"] = (cfg.ensemble, GIVEN) if cfg.ensemble else \
        (defaults.MAX_TIME_MEMBERS, "while the time limit allows") if cfg.time_limit else \
        (defaults.SHORT_MEMBERS, why_short) if mixed else (1, "default")
    looks = defaults.member_lookbacks(lookback, defaults.MEMBER_LOOKBACK_SHARES if mixed else (1.0,), members,
                                      max(dilations, default=1))
    if stored:  # the members a stored run trained read what they read; the rest follow the rule
        looks = tuple(stored[:members]) + looks[len(stored):]
    sources["member_lookbacks"] = GIVEN if stored else \
        f"{why_short}: {', '.join(f'{share:g}' for share in defaults.MEMBER_LOOKBACK_SHARES)} of the lookback in turn" \
        if looks else "all read the lookback"
    recipe = Recipe(horizon=horizon, val_size=val_size, season=season, lookback=lookback, dilations=dilations,
                    forking=forking, full_data=full, members=members, member_lookbacks=looks, sources=sources,
                    **{name: value for name, (value, _) in budget.items()})
    return recipe, notes


def _train_windows(lengths: list[int], lookback: int, horizon: int, val_size: int) -> int:
    """The training windows of series of these lengths, short ones padded: those `workflow._prepare` cuts."""
    from lstmcast.data import windows

    n = np.asarray(lengths, np.int64)
    pads = windows.pad_sizes(n, lookback, horizon, val_size)
    return len(windows.TrainOrigins.of(np.zeros(len(n), np.int64), n + pads, lookback, horizon, val_size, pads))


def _budget(cfg: TrainConfig, forking: int, n_train: int, keep: bool) -> dict[str, tuple[Any, str]]:
    """batch_size, epoch_steps, epochs and patience for `n_train` training windows (`train.defaults.size_budget`),
    each with its source; with `keep`, as `cfg` stores them."""
    from lstmcast.train.defaults import DEFAULT_PATIENCE, default_epochs, default_patience, size_budget

    if keep:  # runs written before the budget was sized had no epoch_steps, before patience was sized 5
        return {"batch_size": (cfg.batch_size, GIVEN),
                "epoch_steps": (cfg.epoch_steps, GIVEN) if cfg.epoch_steps is not None else
                (None, "a run from before sized budgets: 20-50 batches"),
                "epochs": (cfg.epochs, GIVEN),
                "patience": (cfg.patience, GIVEN) if cfg.patience is not None else
                (DEFAULT_PATIENCE, "a run from before sized patience")}
    batch, steps = size_budget(n_train, forking, cfg.batch_size, cfg.epoch_steps)
    sized, per_epoch = f"sized to {n_train:,} training windows", f"sized to {steps}-step epochs"
    return {"batch_size": (batch, GIVEN if cfg.batch_size is not None else sized),
            "epoch_steps": (steps, GIVEN if cfg.epoch_steps is not None else sized),
            "epochs": (cfg.epochs, GIVEN) if cfg.epochs else
            (TIME_LIMIT_EPOCHS, "time limit: until early stopping or the limit") if cfg.time_limit else
            (default_epochs(steps), per_epoch),
            "patience": (cfg.patience, GIVEN) if cfg.patience else (default_patience(steps), per_epoch)}
