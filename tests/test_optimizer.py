"""The training loop's Adam: the same weights as torch.optim.Adam, its state layout, and no compiler import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from lstmcast.train.adam import Adam


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.ModuleDict({"lstm": nn.LSTM(2, 6, 2, batch_first=True), "head": nn.Linear(6, 3)})


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out, _ = model["lstm"](x)
    return ((model["head"](out[:, -1]) - y) ** 2).mean()


def test_adam_steps_match_torch_adam_bit_for_bit():
    ours_model, torch_model = _model(0), _model(0)
    ours = Adam(ours_model.parameters(), lr=1e-3)
    reference = torch.optim.Adam(torch_model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    for step in range(30):
        x, y = torch.randn(8, 12, 2, generator=gen), torch.randn(8, 3, generator=gen)
        lr = 1e-3 * (1 + step % 4)  # the loop changes the rate between steps
        for opt, model in ((ours, ours_model), (reference, torch_model)):
            opt.zero_grad(set_to_none=True)
            _loss(model, x, y).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.param_groups[0]["lr"] = lr
            opt.step()
    for (name, a), (_, b) in zip(ours_model.state_dict().items(), torch_model.state_dict().items()):
        assert torch.equal(a, b), name
    theirs = reference.state_dict()["state"]
    assert sorted(ours.state_slots()) == sorted(theirs)
    for index, slots in ours.state_slots().items():
        for key, value in slots.items():
            assert value.dtype == theirs[index][key].dtype and torch.equal(value, theirs[index][key]), (index, key)


def test_adam_state_round_trip_continues_identically():
    model = _model(2)
    opt = Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(4, 5, 2), torch.randn(4, 3)
    for _ in range(3):
        opt.zero_grad()
        _loss(model, x, y).backward()
        opt.step()
    copy = _model(2)
    copy.load_state_dict(model.state_dict())
    again = Adam(copy.parameters(), lr=1e-2)
    again.load_slots({i: {k: v.clone() for k, v in s.items()} for i, s in opt.state_slots().items()})
    for o, m in ((opt, model), (again, copy)):
        o.zero_grad()
        _loss(m, x, y).backward()
        o.step()
    for a, b in zip(model.parameters(), copy.parameters()):
        assert torch.equal(a, b)
    assert opt.state_slots()[0]["step"].item() == 4.0


def test_adam_rejects_state_of_another_model():
    opt = Adam(_model(0).parameters(), lr=1e-3)
    wrong = {0: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(3, 3), "exp_avg_sq": torch.zeros(3, 3)}}
    with pytest.raises(ValueError, match="shape"):
        opt.load_slots(wrong)
    with pytest.raises(ValueError, match="parameter 99"):
        opt.load_slots({99: wrong[0]})
    with pytest.raises(KeyError):
        opt.load_slots({0: {"step": torch.tensor(1.0)}})


def test_training_does_not_import_the_compiler():
    """torch.optim imports torch._dynamo (about 2 s); training a model must not pay for it."""
    code = (
        "import sys, numpy as np\n"
        "from lstmcast import api\n"
        "from lstmcast.config import TrainConfig\n"
        "t = np.arange(400, dtype=float)\n"
        "y = 10 + np.sin(2 * np.pi * t / 24)\n"
        "import pandas as pd\n"
        "frame = pd.DataFrame({'time': pd.date_range('2024-01-01', periods=400, freq='h'), 'y': y})\n"
        "frame.to_csv(sys.argv[1], index=False)\n"
        "api.train(sys.argv[1], horizon=6, run_dir=sys.argv[2], train_config=TrainConfig(max_steps=2, batch_size=8), "
        "hidden=8, threads=1)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", code, str(Path(tmp) / "s.csv"), str(Path(tmp) / "run")],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
