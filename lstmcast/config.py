"""Frozen configuration dataclasses and the registries of choices.

`ModelConfig` is everything needed to rebuild the network; `TrainConfig` is how it
was trained; `DataConfig` is how the CSV was read. All three are saved in the run
directory as JSON and rebuilt from it on load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any


class Fill(str, Enum):
    """How missing values and gaps in a regular series are filled."""

    interpolate = "interpolate"
    ffill = "ffill"
    zero = "zero"
    error = "error"


class ScalerKind(str, Enum):
    """Per-series scaler, fitted on each series' training part (scikit-learn)."""

    standard = "standard"
    minmax = "minmax"
    robust = "robust"
    mean = "mean"  # no centring, divide by the mean absolute value
    none = "none"


class Transform(str, Enum):
    """What the network models of each series: its values, or their logarithm (before the scaler)."""

    auto = "auto"  # the log of every series whose values are all positive; the values of the others
    log = "log"  # the log of every series (all its values must be positive)
    none = "none"  # the values as they are (runs written before transforms existed)


class DetectScore(str, Enum):
    """What `detect` scores a point with (its `score` column)."""

    rank = "rank"  # one minus the conformal p-value of its residual among the past ones
    likelihood = "likelihood"  # NAB's numenta detector's anomaly likelihood of the residuals (calibration.likelihood)
    multiscale = "multiscale"  # ranks of the means of 1, 10, 100 residuals, hold-off, range (calibration.multiscale)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class WindowNorm(str, Enum):
    """How each input window is normalised inside the model (undone on its output)."""

    mean = "mean"  # subtract the window's mean
    revin = "revin"  # subtract the mean, divide by the window's standard deviation
    none = "none"


class Cell(str, Enum):
    """The recurrent cell of the encoder."""

    lstm = "lstm"  # nn.LSTM (fused)
    gru = "gru"  # nn.GRU (fused)
    peephole = "peephole"  # LSTM whose gates also see the cell state (lstmcast.cells)


class Precision(str, Enum):
    """Arithmetic of the forward pass in training; loss and optimizer stay float32."""

    auto = "auto"  # bf16 where the CPU or GPU supports it, else fp32
    fp32 = "fp32"
    bf16 = "bf16"


class Schedule(str, Enum):
    """Learning rate over the planned steps: constant, or cosine decay to a tenth."""

    constant = "constant"
    cosine = "cosine"


class FullData(str, Enum):
    """After early stopping on the held-out points, whether to train again on every point (AutoGluon's
    refit_full): the held-out run finds the number of steps, the final networks learn the newest data."""

    auto = "auto"  # where the held-out points are a large share of the data (train.defaults.use_full_data)
    on = "on"
    off = "off"  # the networks trained on the held-out split (runs written before it existed)


class Loss(str, Enum):
    """Training loss on the scaled values; MAE suits sMAPE/MASE-style metrics."""

    mae = "mae"
    mse = "mse"
    huber = "huber"


@dataclass(frozen=True)
class DataConfig:
    """How to read the CSV. None means: detect it and say what was picked."""

    id_col: str | None = None
    time_col: str | None = None
    target: tuple[str, ...] | None = None
    freq: str | None = None
    fill: Fill = Fill.interpolate
    past_covariates: tuple[str, ...] = ()  # observed up to the forecast origin only
    future_covariates: tuple[str, ...] = ()  # known for the forecast period too
    static: tuple[str, ...] = ()  # constant per series (numeric or categorical)
    nonnegative: bool = True  # clip forecasts at 0 for series whose training values are all >= 0
    calendar: bool = False  # sin/cos calendar features of the timestamps (datetime time axis only); opt-in:
    # on by default they were worse in 5 of 7 measured cases (benchmarks/RESULTS.md, "Calendar features on and off")
    date_format: str | None = None  # strftime format of a text time column (e.g. %d/%m/%Y); None: inferred from its values
    dayfirst: bool = False  # an inferred format reads day before month (01/02/1959 is 1 February)

    @property
    def covariates(self) -> tuple[str, ...]:
        return self.past_covariates + self.future_covariates + self.static


@dataclass(frozen=True)
class ModelConfig:
    """The network: a stacked recurrent encoder reading `lookback` steps, emitting `horizon` steps.

    `input_size` is the number of input channels per step (1: the target alone; the
    others are covariates and calendar features, see lstmcast.covariates). The last
    `known_size` of them are known for the future too: the head also reads their values
    over the `horizon` steps it forecasts.
    """

    lookback: int
    horizon: int
    input_size: int = 1
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.0
    window_norm: WindowNorm = WindowNorm.revin
    skip: bool = True  # add a linear map from the window straight to the horizon
    cell: Cell = Cell.lstm
    bidirectional: bool = False  # the encoder also reads each window backwards
    attention: bool = False  # the head attends over all encoder states of the window
    known_size: int = 0  # future-known input channels the head reads for the forecast steps
    quantiles: tuple[float, ...] = ()  # levels of the quantile head, increasing; () = point forecast only
    members: int = 1  # networks of this config trained with different seeds; forecasts are their median
    # Per layer, how many steps back each state links (dilated RNN, Chang et al. 2017; ES-RNN): layer k
    # at step t reads its own state at t - d_k. () = 1 everywhere, the plain stacked encoder.
    dilations: tuple[int, ...] = ()
    # Per ensemble member, how many of the `lookback` steps it reads (the last ones): N-BEATS's ensembles
    # mix lookbacks. () = every member reads `lookback`.
    member_lookbacks: tuple[int, ...] = ()

    def member(self, k: int) -> ModelConfig:
        """The config of member k's own network: its lookback, one member."""
        lookback = self.member_lookbacks[k] if self.member_lookbacks else self.lookback
        return replace(self, lookback=lookback, members=1, member_lookbacks=())

    def __post_init__(self) -> None:
        for name in ("lookback", "horizon", "input_size", "hidden", "layers", "members"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(self.known_size, int) or isinstance(self.known_size, bool) \
                or not 0 <= self.known_size < self.input_size:
            raise ValueError(f"known_size must be in [0, input_size), not {self.known_size!r}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout!r}")
        for name in ("skip", "bidirectional", "attention"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")
        q = self.quantiles
        if not isinstance(q, tuple) or not all(isinstance(v, float) and 0 < v < 1 for v in q) \
                or any(a >= b for a, b in zip(q, q[1:])):
            raise ValueError(f"quantiles must be increasing floats in (0, 1), not {q!r}")
        d = self.dilations
        if not isinstance(d, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in d):
            raise ValueError(f"dilations must be a tuple of integers, not {d!r}")
        if d:
            if len(d) != self.layers or not all(1 <= v <= self.lookback for v in d):
                raise ValueError(f"dilations must be one integer in [1, lookback {self.lookback}] per layer "
                                 f"({self.layers}), not {list(d)}")
            if self.bidirectional or self.cell is Cell.peephole:
                raise ValueError("dilations work with the lstm and gru cells, one direction; not with "
                                 + ("--bidirectional" if self.bidirectional else "--cell peephole"))
        m = self.member_lookbacks
        if not isinstance(m, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in m):
            raise ValueError(f"member_lookbacks must be a tuple of integers, not {m!r}")
        if m and (len(m) != self.members or not all(max(d, default=1) <= v <= self.lookback for v in m)):
            raise ValueError(f"member_lookbacks must be one integer per member ({self.members}) in "
                             f"[{max(d, default=1)}, lookback {self.lookback}], not {list(m)}")


# What a run.json written before a field existed meant by its absence (newer fields'
# defaults are the old behaviour: cell lstm, not bidirectional, no attention).
LEGACY_MODEL_FIELDS = {"window_norm": "mean", "skip": False}


# The ModelConfig fields a user chooses (lookback and horizon aside); train() and resume() pass them on.
ARCH_FIELDS = ("hidden", "layers", "dropout", "window_norm", "skip", "cell", "bidirectional", "attention",
               "quantiles", "dilations")


@dataclass(frozen=True)
class TrainConfig:
    """How the network is trained.

    `batch_size` and `epoch_steps` None are sized to the data when training starts
    (`train.defaults.size_budget`) and stored resolved in run.json. A run written before
    `epoch_steps` existed has none: its epochs were at least 20 and at most 50 batches, and
    resuming or refitting it keeps that rule.
    """

    epochs: int | None = None  # None: train.defaults.default_epochs, or TIME_LIMIT_EPOCHS with a time limit
    max_steps: int | None = None
    batch_size: int | None = None  # None: sized to the data
    epoch_steps: int | None = None  # optimiser steps per epoch; None: sized to the data
    lr: float = 1e-3
    schedule: Schedule = Schedule.constant
    patience: int | None = None  # epochs without improvement; None: train.defaults.default_patience
    val_size: int | None = None  # None: one horizon
    scaler: ScalerKind = ScalerKind.standard
    transform: Transform = Transform.auto  # per series, before the scaler; run.json marks the series modelled in logs
    loss: Loss = Loss.mae
    # Per-series loss weights: 0 counts every series' errors alike in modelled units, 1 as MASE counts
    # them, 0.5 half of each (data.scaling.mase_weights). 0.5 won on M4 and lost on held-out files, so
    # the default stays 0 (benchmarks/RESULTS.md, "MASE-scaled loss").
    mase_weight: float = 0.0
    clip: float = 1.0
    forking: int | None = None  # origins trained per sequence (forking sequences, MQ-RNN); None: train.recipe decides
    seed: int = 0
    device: Device = Device.auto
    precision: Precision = Precision.auto
    time_limit: float | None = None  # seconds for the whole training; the best model so far at the limit
    ensemble: int | None = None  # members to train (seeds seed, seed+1, ...); None: 1, or what a time limit fits
    full_data: FullData = FullData.off  # train again on every point for the best held-out number of steps


# Bounds of the training options that size work (and of run.json's "train", which refits and
# resumes read): beyond them a value is a typo or a tampered file, never a plan. The CLI
# refuses them at the door (exit 2), run.record when it reads run.json (exit 3).
TRAIN_LIMITS = {"epochs": 100_000, "max_steps": 100_000_000, "batch_size": 1 << 20, "epoch_steps": 1_000_000,
                "patience": 100_000, "val_size": 100_000_000, "forking": 100_000, "ensemble": 100}
MAX_TIME_LIMIT = 366 * 86400.0  # seconds: a year


def train_problem(cfg: TrainConfig) -> tuple[str, str] | None:
    """(field, what is wrong) for the first option of `cfg` that is of the wrong type, not finite
    or beyond `TRAIN_LIMITS`, MAX_TIME_LIMIT; None when all are sound."""
    for name, limit in TRAIN_LIMITS.items():
        value = getattr(cfg, name)
        if value is None:
            continue
        low = 1
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= limit:
            return name, f"not an integer in [{low}, {limit:,}] ({value!r})"
    for name, low, high in (("lr", 0.0, 1e6), ("clip", 0.0, 1e12), ("mase_weight", 0.0, 1.0),
                            ("time_limit", 0.0, MAX_TIME_LIMIT)):
        value = getattr(cfg, name)
        if value is None and name == "time_limit":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
                or (name == "time_limit" and value == 0):
            return name, f"not a finite number in [{low:g}, {high:,.0f}] ({value!r})"
    return None


TIME_LIMIT_EPOCHS = 1000  # with --time-limit training goes on until early stopping or the limit


# Left out of run.json when empty, so that a run without them is written exactly as before they existed.
OMIT_WHEN_EMPTY = frozenset({"quantiles", "dilations", "time_limit", "ensemble", "member_lookbacks"})
OMIT_WHEN_DEFAULT = {"members": 1}  # a single network is written as before ensembles existed


def to_json_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (enums as their values, tuples as lists)."""
    out: dict[str, Any] = {}
    for key, value in asdict(config).items():
        if key in OMIT_WHEN_EMPTY and not value or OMIT_WHEN_DEFAULT.get(key, object()) == value:
            continue
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def from_json_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from `to_json_dict` output; unknown keys are ignored."""
    kwargs: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(cls)}
    for name in types:
        if name not in data:
            continue
        value = data[name]
        default = cls.__dataclass_fields__[name].default
        if isinstance(default, Enum):
            value = type(default)(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
