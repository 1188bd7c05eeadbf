"""Every series gets a forecast: short series are padded, never shrink the lookback or stop the file; and the
full-data refit, which trains again on the held-out points once their number of steps is known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, TINY_CLI, TINY_MODEL, seasonal

from lstmcast import api
from lstmcast.config import FullData, TrainConfig
from lstmcast.data import windows
from lstmcast.errors import InputError
from lstmcast.run.rundir import load_run
from lstmcast.train.defaults import pick_lookback, use_full_data


def mixed_frame(lengths: dict[str, int], freq: str = "MS") -> pd.DataFrame:
    """A long file whose series end on the same month and start when their length says."""
    parts = []
    for k, (sid, n) in enumerate(lengths.items()):
        times = pd.date_range(end="2024-12-01", periods=n, freq=freq)
        parts.append(pd.DataFrame({"id": sid, "month": times.strftime("%Y-%m-%d"),
                                   "sales": seasonal(n, 12, level=50 + 10 * k, seed=k)}))
    return pd.concat(parts, ignore_index=True)


def test_pad_sizes_give_a_short_series_one_window_and_leave_the_others_alone():
    lookback, horizon, val = 12, 6, 6
    lengths = np.array([300, 30, 20, 7, 2])
    pads = windows.pad_sizes(lengths, lookback, horizon, val)
    assert pads.tolist() == [0, 0, 4, 17, 22]  # up to lookback + validation + horizon = 24 points
    sizes = lengths + pads
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    origins = windows.TrainOrigins.of(offsets, sizes, lookback, horizon, val, pads)
    assert origins.count.tolist() == [277, 7, 1, 0, 0]  # 7 and 2 points: under horizon + validation + MIN_INPUT
    for s in range(3):  # every training origin reads MIN_INPUT real values and its targets are real ones
        first = origins.first[s] - offsets[s]
        assert first - pads[s] >= windows.MIN_INPUT
        assert first + origins.count[s] - 1 + horizon <= sizes[s] - val
    _, val_series = windows.val_origins(offsets, sizes, lookback, horizon, val, pads)
    assert set(val_series.tolist()) == {0, 1, 2}  # the 7- and 2-point series have nothing to validate on


def test_pad_front_repeats_the_first_value():
    assert windows.pad_front(np.array([3.0, 4.0]), 3).tolist() == [3.0, 3.0, 3.0, 3.0, 4.0]
    assert windows.pad_front(np.array([3.0]), 0).tolist() == [3.0]


def test_lookback_follows_the_median_series_and_only_a_file_with_nothing_to_train_on_is_refused(tmp_path):
    notes: list[str] = []
    # one 16-point series among 44-point ones (M3 quarterly): the lookback is what the median series holds
    assert pick_lookback([16] + [44] * 9, ["young"] + list("abcdefghi"), 8, 8, 4, None, tmp_path, notes) == \
        (16, "two horizons")
    with pytest.raises(InputError, match=r"no series is long enough.*'b'.*9 points.*at least one needs 11"):
        pick_lookback([7, 9], ["a", "b"], 4, 4, 1, None, tmp_path / "f.csv", [])


def test_a_file_mixing_7_and_300_point_series_forecasts_every_series(tmp_path):
    data = tmp_path / "mixed.csv"
    mixed_frame({"old": 300, "mid": 60, "mid2": 60, "young": 7, "newborn": 2}).to_csv(data, index=False)
    report = api.train(data, horizon=6, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    note = next(n for n in report.notes if "padded" in n)
    assert "'young'" in note and "'newborn'" in note and "not trained on" in note
    assert report.model["lookback"] == 36  # three seasons, as the median series allows: not capped by the young
    forecast = api.predict(report.run_dir).forecast
    assert sorted(forecast["id"].unique()) == ["mid", "mid2", "newborn", "old", "young"]
    assert forecast["forecast"].notna().all() and (forecast.groupby("id").size() == 6).all()
    # new data whose series are shorter than the lookback are forecast too, from padded histories
    short = tmp_path / "short.csv"
    mixed_frame({"old": 5, "young": 3}).to_csv(short, index=False)
    again = api.predict(report.run_dir, data=short)
    assert again.forecast["forecast"].notna().all() and any("padded" in n for n in again.notes)


@pytest.mark.slow  # real processes
def test_cli_trains_a_file_with_a_young_series_and_names_it(cli, tmp_path):
    data = tmp_path / "mixed.csv"
    mixed_frame({"a": 60, "b": 60, "Y50": 7}).to_csv(data, index=False)
    run = tmp_path / "run"
    done = cli("train", data, "--horizon", "4", "--run-dir", run, *TINY_CLI)
    assert done.returncode == 0, done.stderr
    assert "'Y50'" in done.stderr + done.stdout
    out = cli("predict", "--run", run, "--output", tmp_path / "fc.csv")
    assert out.returncode == 0, out.stderr
    assert set(pd.read_csv(tmp_path / "fc.csv")["id"]) == {"a", "b", "Y50"}


@pytest.mark.slow  # real processes
def test_cli_refuses_a_file_where_no_series_can_train_saying_the_least_length(cli, tmp_path):
    data = tmp_path / "tiny.csv"
    mixed_frame({"a": 5, "b": 6}).to_csv(data, index=False)
    done = cli("train", data, "--horizon", "4", "--run-dir", tmp_path / "run", *TINY_CLI)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "at least one needs 11" in done.stderr


def test_full_data_auto_follows_the_held_out_share():
    assert use_full_data(FullData.auto, [48, 60, 126], 18, False, False, False, []) == (  # M3 monthly
        True, "auto: 18 held-out points are 30% of the median series, at least 10%")
    assert use_full_data(FullData.auto, [700, 960], 48, False, False, False, []) == (  # M4 Hourly
        False, "auto: 48 held-out points are 6% of the median series, under 10%")
    notes: list[str] = []
    # quantiles: calibrated on held-out
    assert use_full_data(FullData.auto, [48], 18, True, False, False, notes) == (False, "auto: not with --quantiles")
    assert notes == ["full data: not with --quantiles (intervals are calibrated on the held-out points); the run "
                     "keeps the networks of the held-out split"]
    assert use_full_data(FullData.off, [48], 18, False, False, False, []) == (False, "--full-data off")
    with pytest.raises(InputError, match="--full-data on does not work with --quantiles"):
        use_full_data(FullData.on, [48], 18, True, False, False, [])


def test_full_data_trains_again_on_the_held_out_points(tmp_path):
    data = tmp_path / "m.csv"
    mixed_frame({"a": 40, "b": 50}).to_csv(data, index=False)
    cfg = TINY.__class__(**{**TINY.__dict__, "max_steps": None, "epochs": 3, "epoch_steps": 2,
                            "full_data": FullData.auto})
    held = api.train(data, horizon=6, train_config=cfg.__class__(**{**cfg.__dict__, "full_data": FullData.off}),
                     run_dir=tmp_path / "held", **TINY_MODEL)
    full = api.train(data, horizon=6, train_config=cfg, run_dir=tmp_path / "full", **TINY_MODEL)
    assert "full_data" not in held.metrics
    # each member (three: short series) trains again for the steps of its best held-out epoch
    assert full.metrics["full_data"]["steps"] == 2 * sum(m["best_epoch"] for m in full.metrics["members"])
    assert any(n.startswith("full data: trained again") for n in full.notes)
    # the held-out split scores the same networks before the refit: the validation metrics agree
    assert full.metrics["validation"] == pytest.approx(held.metrics["validation"])
    # the stored tails and scalers now come from every point, and the forecast differs
    record = json.loads((full.run_dir / "run.json").read_text())
    assert record["train"]["full_data"] == "auto" and TrainConfig().full_data is FullData.off  # opt-in
    a = api.predict(held.run_dir).forecast["forecast"].to_numpy()
    b = api.predict(full.run_dir).forecast["forecast"].to_numpy()
    assert np.isfinite(b).all() and not np.allclose(a, b)


@pytest.mark.slow  # real processes
@pytest.mark.parametrize("rows", [1, 3])
def test_a_file_too_short_to_train_says_the_least_length_first(cli, tmp_path, rows):
    """One point has no frequency either: the length, what the user can act on, is said first (issue 32)."""
    data = tmp_path / "few.csv"
    data.write_text("date,sales\n" + "".join(f"2024-{m:02d}-01,{m + 4}\n" for m in range(1, rows + 1)))
    done = cli("train", data, "--run-dir", tmp_path / "run", *TINY_CLI)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"has {rows} point" in done.stderr and "frequency" not in done.stderr and "add history" in done.stderr
    assert not (tmp_path / "run").exists()


def test_with_covariates_the_shortest_series_still_bounds_the_lookback(tmp_path):
    """Covariate channels are not padded: a short series shrinks the lookback as before, and one too short
    for any window is named."""
    notes: list[str] = []
    assert pick_lookback([40] + [200] * 5, list("abcdef"), 6, 6, 12, None, tmp_path, notes, unpadded=True) == \
        (28, "capped by the shortest series; 36 wanted")
    assert notes[-1] == "lookback 28 (capped by the shortest series; 36 wanted)"
    with pytest.raises(InputError, match=r"series 'a' has 10 points; with covariates each series needs at least 14"):
        pick_lookback([10, 200], ["a", "b"], 6, 6, 12, None, tmp_path, [], unpadded=True)


def test_short_series_train_a_mixed_lookback_ensemble_with_short_forking_sequences(tmp_path):
    data = tmp_path / "short.csv"
    mixed_frame({f"s{k}": 40 for k in range(8)}).to_csv(data, index=False)
    report = api.train(data, horizon=6, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    record = json.loads((report.run_dir / "run.json").read_text())
    lookback = record["model"]["lookback"]
    assert lookback == 28  # what the median series holds before validation and horizon: one training window
    assert record["model"]["members"] == 3 and record["model"]["member_lookbacks"] == [28, 21, 14]
    assert record["train"]["forking"] == 8 and record["train"]["ensemble"] == 3
    said = next(n for n in report.notes if n.startswith("recipe: "))
    short = "short series: under 48 training windows in the median one"
    assert f"forking 8 ({short})" in said
    assert f"members 3 ({short}), member lookbacks 28,21,14 ({short}: 1, 0.75, 0.5 of the lookback in turn)" in said
    # each member's network reads its own lookback: the skip map's width says so
    run = load_run(report.run_dir)
    assert [m.w["skip.weight"].shape[1] for m in run.model.members] == [28, 21, 14]
    # the forecast is the median of the members, each fed the last steps of the window it reads
    x = np.random.default_rng(0).normal(size=(5, lookback)).astype(np.float32)
    alone = [m(x[:, lookback - m.config.lookback:]) for m in run.model.members]
    np.testing.assert_allclose(run.model(x), np.median(np.stack(alone), axis=0), rtol=1e-6)
    forecast = api.predict(report.run_dir).forecast
    assert forecast["forecast"].notna().all() and len(forecast) == 8 * 6


def test_long_series_and_given_shapes_keep_one_network_and_long_forking_sequences(tmp_path):
    from lstmcast.train.defaults import median_origins

    assert median_origins([960] * 4, 168, 48, 48) == 697  # M4 Hourly: long series
    assert median_origins([44] * 4, 16, 8, 8) == 13  # M3 quarterly: short
    data = tmp_path / "long.csv"
    mixed_frame({"a": 120, "b": 130}).to_csv(data, index=False)
    long = json.loads((api.train(data, horizon=6, train_config=TINY, run_dir=tmp_path / "long", **TINY_MODEL).run_dir
                       / "run.json").read_text())
    assert long["train"]["forking"] == 48 and "ensemble" not in long["train"]  # one network, written as before
    assert "members" not in long["model"] and "member_lookbacks" not in long["model"]
    short = tmp_path / "short.csv"
    mixed_frame({f"s{k}": 40 for k in range(4)}).to_csv(short, index=False)

    def trained(name: str, lookback: int | None = None, **options) -> dict:
        cfg = TrainConfig(**{**TINY.__dict__, **options})
        report = api.train(short, horizon=6, lookback=lookback, train_config=cfg, run_dir=tmp_path / name, **TINY_MODEL)
        return json.loads((report.run_dir / "run.json").read_text())

    given = trained("given", lookback=20)  # a given lookback: one network, short forking sequences all the same
    assert "members" not in given["model"] and given["train"]["forking"] == 8
    two = trained("two", ensemble=2)  # --ensemble 2: the first two lookbacks
    assert two["model"]["member_lookbacks"] == [28, 21] and two["recipe"]["members"]["source"] == "given"
    assert trained("forking", forking=16)["train"]["forking"] == 16


@pytest.mark.slow  # real processes
def test_member_lookbacks_are_checked_in_the_config_and_in_run_json(cli, tmp_path):
    from lstmcast.config import ModelConfig

    ModelConfig(lookback=12, horizon=4, members=2, member_lookbacks=(12, 6))
    for bad in [(12,), (12, 13), (12, 0), (12, 6.0)]:
        with pytest.raises(ValueError, match="member_lookbacks"):
            ModelConfig(lookback=12, horizon=4, members=2, member_lookbacks=bad)
    with pytest.raises(ValueError, match="member_lookbacks"):  # a dilated layer needs as many steps as it skips
        ModelConfig(lookback=12, horizon=4, members=2, member_lookbacks=(12, 3), dilations=(1, 4))
    data = tmp_path / "short.csv"
    mixed_frame({f"s{k}": 40 for k in range(4)}).to_csv(data, index=False)
    run = tmp_path / "run"
    assert cli("train", data, "--horizon", "6", "--run-dir", run, *TINY_CLI).returncode == 0
    record = json.loads((run / "run.json").read_text())
    record["model"]["member_lookbacks"] = [28, 21, 100000]
    (run / "run.json").write_text(json.dumps(record))
    done = cli("predict", "--run", run)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert "member_lookbacks" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # trains the run and a refit per fold
def test_a_backtest_refit_of_a_mixed_lookback_run_trains_members_of_the_same_lookbacks(tmp_path, monkeypatch):
    from lstmcast.train import workflow

    data = tmp_path / "short.csv"
    mixed_frame({f"s{k}": 76 for k in range(4)}).to_csv(data, index=False)
    run = api.train(data, horizon=6, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL).run_dir
    assert json.loads((run / "run.json").read_text())["model"]["member_lookbacks"] == [36, 27, 18]
    trained: list[tuple[int, ...]] = []
    real = workflow._members

    def seen(model_config, recipe, count):
        out = real(model_config, recipe, count)
        trained.append(out.member_lookbacks)
        return out
    monkeypatch.setattr(workflow, "_members", seen)
    result = api.backtest(run, data, folds=2, refit=True)
    assert trained and set(trained) == {(36, 27, 18)}  # every refit's members read what the run's read
    assert np.isfinite(result.metrics["mase"]).all()


@pytest.mark.slow  # three trainings
def test_a_mixed_lookback_run_stopped_in_its_second_member_resumes_to_the_uninterrupted_weights(tmp_path):
    from safetensors.numpy import load_file

    data = tmp_path / "short.csv"
    mixed_frame({f"s{k}": 40 for k in range(6)}).to_csv(data, index=False)
    cfg = TrainConfig(**{**TINY.__dict__, "max_steps": None, "epochs": 2, "epoch_steps": 2})
    whole = api.train(data, horizon=6, train_config=cfg, run_dir=tmp_path / "whole", **TINY_MODEL)
    calls = []

    def stop_in_member_two(info):
        calls.append(info.epoch)
        if len(calls) == 3:  # member 1's two epochs are done: stop in the first epoch of member 2
            raise KeyboardInterrupt

    cut = api.train(data, horizon=6, train_config=cfg, run_dir=tmp_path / "run", progress=stop_in_member_two,
                    **TINY_MODEL)
    assert cut.metrics["stopped"] == "interrupted"
    stopped = json.loads((cut.run_dir / "run.json").read_text())["model"]
    assert stopped["members"] == 2 and stopped["member_lookbacks"] == [28, 21]  # the second one cut short
    resumed = api.resume(cut.run_dir)
    model = json.loads((resumed.run_dir / "run.json").read_text())["model"]
    assert model["members"] == 3 and model["member_lookbacks"] == [28, 21, 14]  # members 2 and 3 as planned
    a, b = load_file(str(resumed.run_dir / "weights.safetensors")), load_file(str(whole.run_dir / "weights.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # three trainings
def test_full_data_after_a_resume_trains_again_every_member_the_finished_ones_included(tmp_path):
    data = tmp_path / "short.csv"
    mixed_frame({f"s{k}": 40 for k in range(6)}).to_csv(data, index=False)
    cfg = TrainConfig(**{**TINY.__dict__, "max_steps": None, "epochs": 2, "epoch_steps": 2, "full_data": FullData.on})
    whole = api.train(data, horizon=6, train_config=cfg, run_dir=tmp_path / "whole", **TINY_MODEL)
    calls = []

    def stop_in_member_two(info):
        calls.append(info.epoch)
        if len(calls) == 3:
            raise KeyboardInterrupt

    cut = api.train(data, horizon=6, train_config=cfg, run_dir=tmp_path / "run", progress=stop_in_member_two,
                    **TINY_MODEL)
    resumed = api.resume(cut.run_dir)
    # the member finished before the stop is trained again too: three refits, as without the stop
    assert resumed.metrics["full_data"]["steps"] == whole.metrics["full_data"]["steps"] == 2 * sum(
        m["best_epoch"] for m in whole.metrics["members"])
    assert json.loads((resumed.run_dir / "run.json").read_text())["model"]["members"] == 3
