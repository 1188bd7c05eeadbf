"""The LSTM family: cells (lstm, gru, peephole), bidirectional encoders, attention heads."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY, wide_frame, write_frame

from lstmcast import api
from lstmcast.model.cells import PeepholeLSTM, _recurrence, scripted
from lstmcast.run.rundir import load_meta, load_run
from lstmcast.config import Cell, ModelConfig
from lstmcast.errors import RunDirError
from lstmcast.model.numpy_forward import NumpyForecaster, expected_shapes
from lstmcast.model.network import LSTMForecaster

VARIANTS = list(itertools.product(list(Cell), [False, True], [False, True]))  # cell, bidirectional, attention
IDS = [f"{c.value}-{'bi' if b else 'uni'}-{'attn' if a else 'last'}" for c, b, a in VARIANTS]


@pytest.mark.parametrize("bidirectional", [False, True])
def test_peephole_with_zero_peepholes_is_nn_lstm(bidirectional):
    torch.manual_seed(0)
    reference = nn_lstm = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True, bidirectional=bidirectional).double()
    mine = PeepholeLSTM(3, 5, num_layers=2, bidirectional=bidirectional).double()
    missing, unexpected = mine.load_state_dict(nn_lstm.state_dict(), strict=False)
    assert not unexpected and missing and all("weight_peep" in name for name in missing)
    with torch.no_grad():
        for name, weight in mine.named_parameters():
            if "weight_peep" in name:
                weight.zero_()
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(mine(x)[0], reference(x)[0], rtol=0, atol=1e-6)
        # The peepholes do something once they are not zero.
        for name, weight in mine.named_parameters():
            if "weight_peep" in name:
                weight.fill_(0.5)
        assert (mine(x)[0] - reference(x)[0]).abs().max() > 1e-3


def test_peephole_gradcheck_float64():
    torch.manual_seed(0)
    module = PeepholeLSTM(1, 2, num_layers=2, bidirectional=True).double()
    names = [name for name, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
    x = torch.randn(2, 3, 1, dtype=torch.float64, requires_grad=True)

    def run(inputs, *weights):
        return torch.func.functional_call(module, dict(zip(names, weights)), (inputs,))[0]

    assert torch.autograd.gradcheck(run, (x, *params))
    # The TorchScript loop (benchmarks/cells_speed.py) and the plain Python one are the same function.
    xw, w_hh, peep = (torch.randn(*s, dtype=torch.float64) for s in ((2, 5, 12), (12, 3), (3, 3)))
    for reverse in (False, True):
        torch.testing.assert_close(scripted()(xw, w_hh, peep, reverse), _recurrence(xw, w_hh, peep, reverse))


@pytest.mark.parametrize(("cell", "bidirectional", "attention"), VARIANTS, ids=IDS)
def test_numpy_forward_matches_torch(cell, bidirectional, attention):
    torch.manual_seed(0)
    config = ModelConfig(lookback=9, horizon=3, hidden=6, layers=2, cell=cell, bidirectional=bidirectional,
                         attention=attention)
    model = LSTMForecaster(config).eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected_shapes(config)
    net = NumpyForecaster(config, {k: v.numpy() for k, v in model.state_dict().items()})
    x = torch.randn(5, 9) * 2 + 3
    with torch.inference_mode():
        expected = model(x).numpy()
        # Origin 0 of a forking sequence is the plain window forecast.
        torch.testing.assert_close(model.forward_origins(torch.cat([x, x[:, :4]], 1))[:, 0], model(x))
    np.testing.assert_allclose(net(x.numpy()), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("cell", "bidirectional", "attention"), VARIANTS, ids=IDS)
def test_no_origin_sees_later_values(cell, bidirectional, attention):
    """Forking sequences: poisoning the values after origin k changes no forecast up to k."""
    torch.manual_seed(0)
    lookback, origins = 8, 5
    model = LSTMForecaster(ModelConfig(lookback=lookback, horizon=3, hidden=6, cell=cell, bidirectional=bidirectional,
                                       attention=attention)).eval()
    x = torch.randn(2, lookback + origins - 1)
    with torch.inference_mode():
        clean = model.forward_origins(x)
        for k in range(origins - 1):
            poisoned = x.clone()
            poisoned[:, lookback + k:] = 1e3
            changed = model.forward_origins(poisoned)
            torch.testing.assert_close(changed[:, : k + 1], clean[:, : k + 1])
            assert not torch.allclose(changed[:, k + 1], clean[:, k + 1])  # later origins do see them


@pytest.fixture(scope="module")
def family_csv(tmp_path_factory):
    return write_frame(tmp_path_factory.mktemp("family") / "hourly.csv",
                       wide_frame(n=90, freq="h", time_col="timestamp", fmt="%Y-%m-%d %H:%M:%S"))


@pytest.mark.parametrize(("cell", "bidirectional", "attention"), VARIANTS, ids=IDS)
@pytest.mark.slow
def test_every_variant_trains_saves_loads_predicts(family_csv, tmp_path, cell, bidirectional, attention):
    report = api.train(family_csv, horizon=4, lookback=10, hidden=4, layers=2, cell=cell,
                       bidirectional=bidirectional, attention=attention,
                       train_config=replace(TINY, max_steps=2, forking=3), run_dir=tmp_path / "run")
    meta = load_meta(report.run_dir).to_json()
    assert (meta["model"]["cell"], meta["model"]["bidirectional"], meta["model"]["attention"]) == \
        (cell.value, bidirectional, attention)
    assert report.model == meta["model"]
    # A bidirectional encoder trains one origin per sequence, and says so.
    assert meta["train"]["forking"] == (1 if bidirectional else 3)
    assert any("bidirectional" in n for n in report.notes) == bidirectional
    run = load_run(report.run_dir)
    assert run.model_config.cell is cell and (run.model_config.bidirectional, run.model_config.attention) == \
        (bidirectional, attention)
    forecast = api.predict(report.run_dir).forecast
    assert len(forecast) == 2 * 4 and np.isfinite(forecast["forecast"]).all()


def test_run_json_that_names_another_variant_is_refused(run_copy):
    meta_path = run_copy / "run.json"
    original = json.loads(meta_path.read_text())
    for change in ({"cell": "gru"}, {"cell": "peephole"}, {"bidirectional": True}, {"attention": True}):
        meta_path.write_text(json.dumps({**original, "model": {**original["model"], **change}}))
        with pytest.raises(RunDirError, match="do not match"):
            load_run(run_copy)
    for bad in ({"cell": "transformer"}, {"bidirectional": "yes"}):
        meta_path.write_text(json.dumps({**original, "model": {**original["model"], **bad}}))
        with pytest.raises(RunDirError, match="invalid model config"):
            load_run(run_copy)


def test_resume_keeps_the_variant_and_matches_the_uninterrupted_run(family_csv, tmp_path):
    kwargs = dict(horizon=4, lookback=10, hidden=4, layers=1, cell=Cell.peephole, bidirectional=True, attention=True,
                  train_config=replace(TINY, epochs=2, max_steps=None))
    whole = api.train(family_csv, run_dir=tmp_path / "whole", **kwargs)

    def stop(info):
        raise KeyboardInterrupt

    cut = api.train(family_csv, run_dir=tmp_path / "cut", progress=stop, **kwargs)
    assert cut.metrics["stopped"] == "interrupted"
    done = api.resume(cut.run_dir)
    assert done.model == whole.model and done.model["cell"] == "peephole"
    np.testing.assert_array_equal(api.predict(done.run_dir).forecast["forecast"],
                                  api.predict(whole.run_dir).forecast["forecast"])


@pytest.mark.slow
def test_cli_process_config_file_and_torch_free_predict(cli, family_csv, tmp_path):
    config = tmp_path / "lstmcast.toml"
    config.write_text('[train]\ncell = "peephole"\nattention = true\nforking = 4\n', encoding="utf-8")
    run_dir = tmp_path / "run"
    result = cli("train", family_csv, "--config", config, "--bidirectional", "--horizon", "4", "--lookback", "10",
                 "--hidden", "4", "--max-steps", "2", "--batch-size", "16", "--device", "cpu", "--run-dir", run_dir,
                 "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {k: summary["model"][k] for k in ("cell", "bidirectional", "attention")} == \
        {"cell": "peephole", "bidirectional": True, "attention": True}
    assert any("forking 4 -> 1" in note for note in summary["notes"])
    saved = (run_dir / "config.toml").read_text(encoding="utf-8")
    assert 'cell = "peephole"' in saved and "bidirectional = true" in saved and "attention = true" in saved
    # predict runs the variant in numpy: torch is never imported.
    driver = ("import sys\nfrom lstmcast import cli\nsys.argv = ['lstmcast', 'predict', '--run', sys.argv[1], "
              "'--output', sys.argv[2], '--quiet']\ntry:\n    cli.main()\nexcept SystemExit as e:\n"
              "    assert e.code == 0, e.code\nprint('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", driver, str(run_dir), str(tmp_path / "f.csv")], capture_output=True,
                          text=True, env=cli.env, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 1 + 2 * 4
    # A cell that does not exist: one readable line, exit 2.
    bad = cli("train", family_csv, "--cell", "transformer", "--run-dir", tmp_path / "bad")
    assert bad.returncode == 2 and "transformer" in bad.stderr and "Traceback" not in bad.stderr
