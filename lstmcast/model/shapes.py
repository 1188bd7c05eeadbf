"""What the torch network (model.network) and the numpy forward (model.numpy_forward) share.

Torch-free: the run loader checks a weights file against `expected_shapes` before
anything is built from it.
"""

from __future__ import annotations

from lstmcast.config import Cell, ModelConfig

# In per-series scaled units: a flat window is not blown up by dividing by its tiny spread.
MIN_STD = 1e-2
GATES = {Cell.lstm: 4, Cell.gru: 3, Cell.peephole: 4}


def directions(config: ModelConfig) -> tuple[str, ...]:
    return ("", "_reverse") if config.bidirectional else ("",)


def member_prefix(k: int) -> str:
    """Tensor names of ensemble member k start with this (a single network's have no prefix)."""
    return f"member{k}."


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes `LSTMForecaster(config).state_dict()` has (each member's, prefixed)."""
    if config.members > 1:
        return {member_prefix(k) + name: shape for k in range(config.members)
                for name, shape in expected_shapes(config.member(k)).items()}
    shapes: dict[str, tuple[int, ...]] = {}
    name, gates, hidden = config.cell.value, GATES[config.cell] * config.hidden, config.hidden
    dirs = directions(config)
    for layer in range(config.layers):
        width = config.input_size if layer == 0 else hidden * len(dirs)
        for sfx in dirs:
            shapes[f"{name}.weight_ih_l{layer}{sfx}"] = (gates, width)
            shapes[f"{name}.weight_hh_l{layer}{sfx}"] = (gates, hidden)
            shapes[f"{name}.bias_ih_l{layer}{sfx}"] = (gates,)
            shapes[f"{name}.bias_hh_l{layer}{sfx}"] = (gates,)
            if config.cell is Cell.peephole:
                shapes[f"{name}.weight_peep_l{layer}{sfx}"] = (3, hidden)
    width = hidden * len(dirs)
    if config.attention:
        shapes["attn.weight"] = (width, width)
    features = width * (2 if config.attention else 1) + config.horizon * config.known_size  # what the heads read
    shapes["head.weight"] = (config.horizon, features)
    shapes["head.bias"] = (config.horizon,)
    if config.skip:
        shapes["skip.weight"] = (config.horizon, config.lookback)
        shapes["skip.bias"] = (config.horizon,)
    if config.quantiles:
        shapes["qhead.weight"] = (config.horizon * len(config.quantiles), features)
        shapes["qhead.bias"] = (config.horizon * len(config.quantiles),)
    return shapes
