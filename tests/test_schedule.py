"""The learning-rate schedule is a pure function of the step, so a resumed run replays it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import TINY, TINY_MODEL

from lstmcast import api
from lstmcast.config import Schedule, TrainConfig
from lstmcast.train.loop import MAX_BATCHES_PER_EPOCH, MIN_BATCHES_PER_EPOCH, lr_at, planned_steps


def test_constant_schedule_keeps_the_learning_rate():
    cfg = TrainConfig(lr=3e-3)
    assert {lr_at(cfg, s, 100) for s in range(0, 150, 7)} == {3e-3}


def test_cosine_decays_from_lr_to_a_tenth_monotonically():
    cfg = TrainConfig(lr=2e-3, schedule=Schedule.cosine)
    rates = [lr_at(cfg, s, 100) for s in range(101)]
    assert rates[0] == pytest.approx(2e-3) and rates[-1] == pytest.approx(2e-4)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert lr_at(cfg, 500, 100) == pytest.approx(2e-4)  # past the plan it stays at the floor


@pytest.mark.parametrize(("n_train", "size", "epochs", "max_steps", "expected"), [
    (10_000_000, 256, 20, None, 20 * MAX_BATCHES_PER_EPOCH),
    (256 * 30, 256, 3, None, 3 * 30),
    (100, 16, 2, None, 2 * MIN_BATCHES_PER_EPOCH),
    (10_000_000, 256, 20, 500, 500),
])
def test_planned_steps_follow_the_epoch_rule(n_train, size, epochs, max_steps, expected):
    assert planned_steps(TrainConfig(epochs=epochs, max_steps=max_steps), n_train, size) == expected


def test_cosine_run_trains_and_records_its_schedule(hourly_csv, tmp_path):
    import json

    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=replace(TINY, schedule=Schedule.cosine),
                       run_dir=tmp_path / "run", **TINY_MODEL)
    assert json.loads((report.run_dir / "run.json").read_text())["train"]["schedule"] == "cosine"


def test_training_steps_follow_the_cosine_schedule(hourly_csv, tmp_path, monkeypatch):
    """The rate each optimiser step used, read off Adam itself: the planned cosine, step for step."""
    from lstmcast.train.adam import Adam

    used: list[float] = []
    step = Adam.step

    def recording(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Adam, "step", recording)
    cfg = replace(TINY, schedule=Schedule.cosine, lr=1e-2, epochs=2, max_steps=12)
    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "run", **TINY_MODEL)
    assert report.metrics["steps"] == len(used) == 12  # max_steps is the plan: 2 epochs of 20 batches exceed it
    assert used == pytest.approx([lr_at(cfg, s, 12) for s in range(12)], rel=1e-12)
    assert used[0] == pytest.approx(1e-2) and all(a > b for a, b in zip(used, used[1:]))
