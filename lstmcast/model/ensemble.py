"""Ensembles: several networks of one config, trained with different seeds; the forecast is their median.

Member k may read only the last `config.member_lookbacks[k]` steps of the window (short series mix
lookbacks, as N-BEATS's ensembles do); its covariate channels are cut alike.

The median, not the mean: one member that learned something odd moves the mean but not
the median of three. Members are stored in one weights file, each under its own prefix
(`model.shapes.member_prefix`); a run of one network has no prefix, as before.
"""

from __future__ import annotations

import numpy as np

from lstmcast.config import ModelConfig
from lstmcast.model.numpy_forward import NumpyForecaster
from lstmcast.model.shapes import member_prefix


class EnsembleForecaster:
    """Callable like `NumpyForecaster`: scaled windows -> the members' median scaled forecasts."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        self.members = []
        for k in range(config.members):
            prefix = member_prefix(k)
            self.members.append(NumpyForecaster(config.member(k), {n[len(prefix):]: v for n, v in weights.items()
                                                                   if n.startswith(prefix)}))
        self.w = {n: v for k, m in enumerate(self.members) for n, v in
                  ((member_prefix(k) + name, value) for name, value in m.w.items())}

    def __call__(self, x: np.ndarray, cov: np.ndarray | None = None) -> np.ndarray:
        return self.forward_all(x, cov)[0]

    def _outputs(self, x: np.ndarray, cov: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Each member's forward_all on the last steps of the window it reads."""
        width = x.shape[1]
        return [m.forward_all(x[:, width - m.config.lookback:],
                              None if cov is None else cov[:, width - m.config.lookback:]) for m in self.members]

    def forward_all(self, x: np.ndarray, cov: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(median forecasts [B, H], median quantiles [B, H, Q] or None): quantiles stay sorted, being
        medians of sorted vectors taken level by level."""
        outs = self._outputs(x, cov)
        point = np.median(np.stack([o[0] for o in outs]), axis=0)
        if outs[0][1] is None:
            return point, None
        return point, np.median(np.stack([o[1] for o in outs]), axis=0)


def forecaster(config: ModelConfig, weights: dict[str, np.ndarray]) -> NumpyForecaster | EnsembleForecaster:
    """The numpy forward pass of a run's weights: one network, or the median of its members."""
    return EnsembleForecaster(config, weights) if config.members > 1 else NumpyForecaster(config, weights)
