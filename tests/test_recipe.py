"""The training recipe sized to the data, resolved once (train.recipe), recorded in run.json and said in a
note; the time limit, the thread count, and what a new user sees first: forecasts of counts clipped at zero,
in-sample evaluation said so, scale-free metrics first."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, TINY_MODEL

from lstmcast import api
from lstmcast.config import TrainConfig
from lstmcast.train import device
from lstmcast.train.defaults import default_epochs, default_patience, size_budget


@pytest.mark.parametrize(("n_train", "batch", "steps"), [
    (73, 16, 10),  # airline-passengers, h 12: one series of 132 months
    (1023, 16, 10),  # under 1,024 windows: 16 sequences
    (1300, 32, 10),  # store sales (4 daily series of 365 days): the floor of 32 from 1,024 windows
    (2162, 32, 10),  # the demo: 2 hourly series of 1,344 points, one sequence per 64 windows
    (8353, 128, 10),  # ETTh1 at horizon 96
    (263_000, 256, 50),  # M4 Hourly: 414 series
])
def test_budget_follows_the_training_signal(n_train, batch, steps):
    assert size_budget(n_train, 48, None, None) == (batch, steps)


def test_given_budget_is_kept_and_short_epochs_get_more_of_them():
    assert size_budget(10_000, 48, 32, 7) == (32, 7)
    assert size_budget(10_000, 1, 32, None) == (32, 50)  # one origin per sequence: more steps to cover the data
    assert default_epochs(10) == 100 and default_epochs(20) == 50 and default_epochs(50) == 20
    # early stopping waits 100 steps of short epochs, 5 epochs of long ones (M4's 50 steps: unchanged)
    assert default_patience(10) == 10 and default_patience(20) == 5 and default_patience(50) == 5


def test_trained_budget_is_stored_resolved(hourly_csv, tmp_path):
    cfg = replace(TINY, batch_size=None, epochs=None)
    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "run", **TINY_MODEL)
    stored = json.loads((report.run_dir / "run.json").read_text())["train"]
    assert stored["batch_size"] in (16, 32, 64, 128, 256) and stored["epoch_steps"] >= 10 and stored["epochs"] >= 20
    assert report.metrics["budget"]["batch_size"] == stored["batch_size"]
    assert stored["patience"] == default_patience(stored["epoch_steps"])  # sized too, and kept for resume and refits


@pytest.mark.slow
def test_time_limit_ends_training_with_the_best_model_by_then(hourly_csv, tmp_path):
    cfg = TrainConfig(time_limit=4.0, epoch_steps=10, batch_size=16, patience=10_000, device=TINY.device)
    started = time.monotonic()
    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "run", **TINY_MODEL)
    took = time.monotonic() - started
    assert report.metrics["stopped"] == "time_limit" and report.metrics["best_epoch"] >= 1
    assert took < 4.0 + 3.0, took  # stops at 95% of the limit; scoring and writing the run come after
    assert api.predict(report.run_dir).forecast["forecast"].notna().all()


def test_threads_follow_the_request_the_environment_and_the_load(monkeypatch):
    monkeypatch.setattr(device, "available_cpus", lambda: 4)
    assert device.choose_threads(3) == 3
    notes = []
    assert device.choose_threads(10_000, notes.append) == 4  # never more threads than CPUs to run them
    assert notes == ["--threads 10000: this process may use 4 CPUs; training on 4 threads"]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert device.choose_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(device, "available_cpus", lambda: 2)
    monkeypatch.setattr(device, "busy_cpus", lambda: None)  # no /proc/stat: the load average alone
    monkeypatch.setattr(device.os, "getloadavg", lambda: (3.5, 3.0, 2.0))
    assert device.choose_threads() == 1  # busy: one thread, not two fighting
    monkeypatch.setattr(device.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert device.choose_threads() == 2
    monkeypatch.setattr(device.os, "getloadavg", lambda: (3.5, 3.0, 2.0))
    monkeypatch.setattr(device, "busy_cpus", lambda: 1.9)
    assert device.choose_threads() == 1  # the other job is still running
    monkeypatch.setattr(device, "busy_cpus", lambda: 0.05)
    assert device.choose_threads() == 2  # the average lingers after a job that has ended


def test_busy_cpus_reads_what_runs_now():
    import threading

    if device.busy_cpus(0.05) is None:
        pytest.skip("no /proc/stat here")
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        busy = device.busy_cpus(0.3)
    finally:
        stop.set()
        worker.join()
    assert busy is not None and busy >= 0.5  # the spinning thread keeps at least one CPU busy


def declining_counts(path, n=120):
    """Counts that fall to zero and stay there for a while: a trend the network may carry below zero."""
    t = np.arange(n)
    values = np.maximum(0, 200 - 2.2 * t + 15 * np.sin(2 * np.pi * t / 12)).round()
    pd.DataFrame({"month": pd.date_range("2010-01-01", periods=n, freq="MS").strftime("%Y-%m-%d"),
                  "count": values}).to_csv(path, index=False)
    return path


def test_counts_are_never_forecast_below_zero(tmp_path):
    data = declining_counts(tmp_path / "counts.csv")
    cfg = replace(TINY, max_steps=20)
    kept = api.train(data, horizon=12, lookback=24, train_config=cfg, run_dir=tmp_path / "clip", **TINY_MODEL)
    raw = api.train(data, api.DataConfig(nonnegative=False), horizon=12, lookback=24, train_config=cfg,
                    run_dir=tmp_path / "raw", **TINY_MODEL)
    assert json.loads((kept.run_dir / "run.json").read_text())["series"][0]["nonnegative"] is True
    assert "nonnegative" not in json.loads((raw.run_dir / "run.json").read_text())["series"][0]
    clipped = api.predict(kept.run_dir, horizon=24).forecast["forecast"].to_numpy()
    unclipped = api.predict(raw.run_dir, horizon=24).forecast["forecast"].to_numpy()
    assert (clipped >= 0).all()
    np.testing.assert_array_equal(clipped, np.maximum(unclipped, 0))  # same seed: the same network, clipped


def test_series_with_negative_values_are_not_clipped(tmp_path):
    path = tmp_path / "temps.csv"
    t = np.arange(100)
    pd.DataFrame({"temp": 3 * np.sin(2 * np.pi * t / 10) - 1}).to_csv(path, index=False)  # row order is time
    report = api.train(path, horizon=5, lookback=20, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    assert "nonnegative" not in json.loads((report.run_dir / "run.json").read_text())["series"][0]


def test_evaluate_on_the_training_file_says_it_is_in_sample(hourly_csv, tmp_path):
    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    notes = api.evaluate(report.run_dir, hourly_csv)["notes"]
    assert any("in-sample" in n and "--backtest --refit" in n for n in notes), notes
    # Data that goes on after the training file: the held-out points are new, no such note.
    frame = pd.read_csv(hourly_csv)
    head = tmp_path / "head.csv"
    frame.iloc[:-24].to_csv(head, index=False)
    early = api.train(head, horizon=6, lookback=12, train_config=TINY, run_dir=tmp_path / "early", **TINY_MODEL)
    assert not any("in-sample" in n for n in api.evaluate(early.run_dir, hourly_csv)["notes"])


def test_progress_hears_of_every_step_so_the_time_left_shows_from_the_first_batch(hourly_csv, tmp_path):
    steps, epochs = [], []

    class Recorder:
        def __call__(self, info):
            epochs.append(info.epoch)

        def on_step(self, done, planned, elapsed):
            steps.append((done, planned, elapsed))

    cfg = replace(TINY, max_steps=6, epochs=3, epoch_steps=2)
    api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "run", progress=Recorder(),
              **TINY_MODEL)
    assert [s[0] for s in steps] == [1, 2, 3, 4, 5, 6] and {s[1] for s in steps} == {6} and epochs == [1, 2, 3]
    assert all(b[2] >= a[2] >= 0 for a, b in zip(steps, steps[1:]))


def test_ensemble_forecasts_the_median_of_its_members(hourly_csv, tmp_path):
    from safetensors.numpy import load_file

    from lstmcast.model.numpy_forward import NumpyForecaster
    from lstmcast.run.rundir import load_run

    cfg = replace(TINY, ensemble=3)
    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "run", **TINY_MODEL)
    stored = json.loads((report.run_dir / "run.json").read_text())
    assert stored["model"]["members"] == 3 and [m["seed"] for m in report.metrics["members"]] == [0, 1, 2]
    weights = load_file(report.run_dir / "weights.safetensors")
    assert {n.split(".", 1)[0] for n in weights} == {"member0", "member1", "member2"}
    run = load_run(report.run_dir)
    one = replace(run.model_config, members=1)
    nets = [NumpyForecaster(one, {n.split(".", 1)[1]: v for n, v in weights.items() if n.startswith(f"member{k}.")})
            for k in range(3)]
    x = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    np.testing.assert_array_equal(run.model(x), np.median(np.stack([net(x) for net in nets]), axis=0))
    # Member 0 is the single network of the same seed: an ensemble of one is the plain run.
    single = api.train(hourly_csv, horizon=6, lookback=12, train_config=TINY, run_dir=tmp_path / "one", **TINY_MODEL)
    np.testing.assert_array_equal(load_run(single.run_dir).model(x), nets[0](x))
    assert "members" not in json.loads((single.run_dir / "run.json").read_text())["model"]
    assert api.evaluate(report.run_dir, hourly_csv)["overall"]["mae"] is not None


def test_interrupted_ensemble_resumes_to_the_uninterrupted_result(hourly_csv, tmp_path):
    cfg = replace(TINY, ensemble=3, max_steps=None, epochs=2, epoch_steps=2, batch_size=16)
    whole = api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "whole", **TINY_MODEL)
    calls = []

    def stop_in_member_two(info):
        calls.append(info.epoch)
        if len(calls) == 3:  # member 1 (the second), after its first epoch
            raise KeyboardInterrupt

    cut = api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "cut",
                    progress=stop_in_member_two, **TINY_MODEL)
    assert cut.metrics["stopped"] == "interrupted" and len(cut.metrics["members"]) == 2
    resumed = api.resume(cut.run_dir)
    assert len(resumed.metrics["members"]) == 3 and resumed.metrics["stopped"] != "interrupted"
    a = api.predict(whole.run_dir).forecast["forecast"].to_numpy()
    b = api.predict(resumed.run_dir).forecast["forecast"].to_numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_time_limit_fills_the_time_with_ensemble_members(hourly_csv, tmp_path):
    # Members of at most 4 epochs of 5 steps: short beside the limit even when another test
    # shares the CPUs (members of unbounded epochs ran 220 steps and left no room for a second).
    cfg = TrainConfig(time_limit=8.0, epochs=4, epoch_steps=5, batch_size=16, patience=1, device=TINY.device)
    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "run", **TINY_MODEL)
    members = report.metrics["members"]
    assert 2 <= len(members) <= 5 and [m["seed"] for m in members] == list(range(len(members)))
    assert json.loads((report.run_dir / "run.json").read_text())["model"]["members"] == len(members)
    assert report.metrics["budget"]["seconds"] < 8.0


FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def test_real_nile_export_reads_its_float_year_as_the_time_axis(tmp_path):
    from lstmcast.data.series import load_series

    series = load_series(FIXTURES / "nile.csv")
    assert series.ids == ["volume"] and series.time_kind == "integer" and series.starts == [1871]
    report = api.train(FIXTURES / "nile.csv", horizon=3, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    assert api.predict(report.run_dir).forecast["year"].tolist() == [1971, 1972, 1973]


def test_real_lynx_counts_are_never_forecast_below_zero(tmp_path):
    report = api.train(FIXTURES / "lynx.csv", horizon=10, train_config=replace(TINY, max_steps=30),
                       run_dir=tmp_path / "run", **TINY_MODEL)
    assert json.loads((report.run_dir / "run.json").read_text())["series"][0]["nonnegative"] is True
    forecast = api.predict(report.run_dir, horizon=30).forecast["forecast"]
    assert (forecast >= 0).all()


# --- the recipe: resolved once, recorded in run.json, said in one note ----------------------------------------


def stored_recipe(run_dir) -> dict:
    return json.loads((run_dir / "run.json").read_text())["recipe"]


def test_the_recipe_is_resolved_once_and_is_what_training_used(hourly_csv, tmp_path, monkeypatch):
    from lstmcast.train import defaults, workflow

    calls = {"resolve": 0, "pick_lookback": 0, "size_budget": 0}

    def counted(name, module):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)

    counted("resolve", workflow)
    counted("pick_lookback", defaults)
    counted("size_budget", defaults)
    notes = []
    cfg = replace(TINY, batch_size=None, ensemble=2)
    report = api.train(hourly_csv, horizon=6, train_config=cfg, run_dir=tmp_path / "run", on_note=notes.append,
                       **TINY_MODEL)
    assert calls == {"resolve": 1, "pick_lookback": 1, "size_budget": 1}
    meta = json.loads((report.run_dir / "run.json").read_text())
    recipe = {name: entry["value"] for name, entry in meta["recipe"].items()}
    model, train = meta["model"], meta["train"]
    assert recipe == {"horizon": model["horizon"], "val_size": train["val_size"], "season": meta["data"]["season"],
                      "lookback": model["lookback"], "dilations": model.get("dilations", []),
                      "forking": train["forking"], "full_data": False, "batch_size": train["batch_size"],
                      "epoch_steps": train["epoch_steps"], "epochs": train["epochs"], "patience": train["patience"],
                      "members": model["members"], "member_lookbacks": model.get("member_lookbacks", [])}
    assert report.metrics["budget"]["batch_size"] == recipe["batch_size"]
    said = [n for n in notes if n.startswith("recipe: ")]
    assert len(said) == 1 and said == [n for n in report.notes if n.startswith("recipe: ")]
    assert "horizon 6 (given)" in said[0] and f"lookback {recipe['lookback']} (capped by the median series" in said[0]


def test_given_values_are_marked_given_and_defaults_carry_their_reason(hourly_csv, tmp_path):
    given = api.train(hourly_csv, horizon=6, lookback=12, train_config=replace(TINY, epoch_steps=4, patience=3),
                      run_dir=tmp_path / "given", **TINY_MODEL)
    sources = {name: entry["source"] for name, entry in stored_recipe(given.run_dir).items()}
    assert {name for name, source in sources.items() if source == "given"} == {
        "horizon", "lookback", "batch_size", "epoch_steps", "epochs", "patience"}
    assert sources["val_size"] == "one horizon" and sources["season"] == "frequency h"
    assert sources["members"] == "default" and sources["forking"] == "default"
    assert sources["full_data"] == "--full-data off"
    # Nothing given: each default says the rule and why; two series of 120 hours, 6 held out.
    cfg = TrainConfig(max_steps=3, device=TINY.device, time_limit=60.0)
    auto = api.train(hourly_csv, train_config=cfg, run_dir=tmp_path / "auto", hidden=8, layers=1, bidirectional=True)
    recipe = stored_recipe(auto.run_dir)
    said = {name: (entry["value"], entry["source"]) for name, entry in recipe.items()}
    assert said["horizon"] == (48, "frequency h")
    assert said["lookback"] == (24, "capped by the median series; 168 wanted")  # 120 - 48 - 48
    assert said["dilations"] == ([], "one layer")
    assert said["forking"] == (1, "bidirectional: one origin per sequence")
    assert said["batch_size"][1] == said["epoch_steps"][1] == "sized to 2 training windows"
    assert said["epochs"] == (1000, "time limit: until early stopping or the limit")
    assert said["patience"] == (10, "sized to 10-step epochs") and said["members"] == (5, "while the time limit allows")


@pytest.mark.parametrize("lengths", [[60, 60, 7, 2], [120, 120]])
def test_the_windows_the_budget_is_sized_to_are_those_training_cuts(tmp_path, lengths):
    from lstmcast.data.series import load_series
    from lstmcast.train.recipe import resolve
    from lstmcast.train.workflow import _prepare

    frame = pd.concat([pd.DataFrame({"id": f"s{k}", "month": pd.date_range("2000-01-01", periods=n, freq="MS"),
                                     "y": np.arange(n) % 12 + 1.0}) for k, n in enumerate(lengths)])
    data = tmp_path / "mixed.csv"
    frame.to_csv(data, index=False)
    series = load_series(data)
    arch = dict(layers=2, cell="lstm", bidirectional=False, quantiles=(), dilations=None)
    recipe, _ = resolve(data, series, 6, None, arch, TrainConfig(), False, False, False)
    prepared, _ = _prepare(data, series, api.DataConfig(), recipe, recipe.train_config(TrainConfig()), False)
    assert recipe.sources["batch_size"] == f"sized to {len(prepared.train_origin):,} training windows"


def test_a_resumed_run_keeps_the_recipe_it_was_started_with(hourly_csv, tmp_path):
    cfg = replace(TINY, max_steps=None, epochs=2, epoch_steps=2, batch_size=None)

    def stop(info):
        raise KeyboardInterrupt

    cut = api.train(hourly_csv, horizon=6, train_config=cfg, run_dir=tmp_path / "run", progress=stop, **TINY_MODEL)
    started = stored_recipe(cut.run_dir)
    assert cut.metrics["stopped"] == "interrupted" and started["lookback"]["source"] != "given"
    resumed = api.resume(cut.run_dir)
    assert stored_recipe(resumed.run_dir) == started
    assert any(n.startswith("recipe: ") and "(capped by the median series" in n for n in resumed.notes)


def test_a_run_without_a_recipe_loads_and_predicts(trained_run, run_copy):
    from lstmcast.run.rundir import load_run

    meta = json.loads((run_copy / "run.json").read_text())
    del meta["recipe"]  # as every run written before the recipe was recorded
    (run_copy / "run.json").write_text(json.dumps(meta))
    run = load_run(run_copy)
    assert run.record.recipe is None and "recipe" not in run.record.to_json()
    old = api.predict(run_copy).forecast
    pd.testing.assert_frame_equal(old, api.predict(trained_run.run_dir).forecast)
    assert load_run(trained_run.run_dir).record.recipe.lookback == trained_run.lookback


def _spoil(meta: dict, field: str, part: str, value) -> None:
    if part:
        meta["recipe"][field][part] = value
    elif field:
        meta["recipe"][field] = value
    else:
        meta["recipe"] = value


@pytest.mark.parametrize(("field", "part", "value", "named"), [
    ("", "", [1, 2], "'recipe' is not an object"),
    ("lookback", "value", "12", "'recipe.lookback.value' is not an integer in [1, 100,000]"),
    ("lookback", "value", 10**12, "'recipe.lookback.value' is not an integer"),
    ("batch_size", "value", 1_000_000_000, "'recipe.batch_size.value' is not an integer"),
    ("members", "value", 1_000_000, "'recipe.members.value' is not an integer in [1, 100]"),
    ("epochs", "value", True, "'recipe.epochs.value' is not an integer"),
    ("epochs", "value", None, "'recipe.epochs.value' is not an integer"),
    ("dilations", "value", [1, 10**9], "'recipe.dilations.value' is not a list of at most 64 integers"),
    ("dilations", "value", "1,24", "'recipe.dilations.value' is not a list"),
    ("full_data", "value", "yes", "'recipe.full_data.value' is not true or false"),
    ("season", "source", 7, "'recipe.season.source' is not a string"),
    ("season", "source", "x" * 100_000, "'recipe.season.source' is longer than 200 characters"),
    ("horizon", "", 6, "'recipe.horizon' is not an object"),
    ("patience", "", {"source": "given"}, "'recipe.patience.value' is missing"),
])
def test_a_tampered_recipe_is_one_line_and_exit_3(run_copy, field, part, value, named):
    from typer.testing import CliRunner

    from lstmcast.cli.app import app
    from lstmcast.errors import EXIT_RUN

    meta = json.loads((run_copy / "run.json").read_text())
    _spoil(meta, field, part, value)
    (run_copy / "run.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(app, ["predict", "--run", str(run_copy), "--output", str(run_copy / "fc.csv")])
    assert result.exit_code == EXIT_RUN, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lstmcast: error: {run_copy / 'run.json'}: field "), lines
    assert named in lines[0] and "Traceback" not in result.output
    assert not (run_copy / "fc.csv").exists()


@pytest.mark.slow
def test_a_missing_recipe_field_is_named_by_a_real_process(cli, run_copy):
    from lstmcast.errors import EXIT_RUN

    meta = json.loads((run_copy / "run.json").read_text())
    del meta["recipe"]["epoch_steps"]
    (run_copy / "run.json").write_text(json.dumps(meta))
    done = cli("predict", "--run", run_copy, "--output", run_copy / "fc.csv")
    assert done.returncode == EXIT_RUN and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"lstmcast: error: {run_copy / 'run.json'}: field "
                                                "'recipe.epoch_steps' is missing; retrain or restore the run"]
