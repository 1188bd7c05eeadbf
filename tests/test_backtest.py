"""Rolling-origin backtests: cut-offs, no look-ahead (poisoned futures), CLI and JSON."""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pandas as pd
import pytest
from conftest import HAS_MATPLOTLIB, TINY, TINY_MODEL, wide_frame, write_frame
from typer.testing import CliRunner

from lstmcast import api
from lstmcast.evaluate.folds import backtest, cutoffs
from lstmcast.forecast.histories import fold_history
from lstmcast.cli.app import app
from lstmcast.config import Fill
from lstmcast.errors import EXIT_INPUT, InputError

POISON = 1e6
LEVELS = (0.1, 0.5, 0.9)


def invoke(*args: object, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def test_cutoffs_are_step_apart_and_the_last_leaves_one_horizon():
    assert cutoffs(100, 10, 3, 5) == [80, 85, 90]
    assert cutoffs(100, 10, 1, 5) == [90]


def test_a_gap_filled_across_the_cutoff_is_refilled_from_the_history_alone():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])  # positions 3 and 4 were a gap, interpolated
    gaps = np.array([3, 4])
    assert fold_history(values, gaps, 4, Fill.interpolate).tolist() == [1.0, 2.0, 3.0, 3.0]
    assert fold_history(values, gaps, 6, Fill.interpolate).tolist() == values[:6].tolist()  # gap inside: kept
    assert fold_history(values, gaps, 4, Fill.ffill).tolist() == [1.0, 2.0, 3.0, 4.0]  # ffill looks back only
    assert values[3] == 4.0, "the series itself is not changed"


def _frames(cut: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trained run's hourly data plus a series `c` it never saw, with a gap around `cut`;
    and the same with every value after the cut-off replaced by garbage."""
    clean = wide_frame(n=120, freq="h", time_col="timestamp", fmt="%Y-%m-%d %H:%M:%S")
    clean["c"] = clean["a"] * 3 + 7
    clean.loc[cut - 2:cut, "a"] = np.nan  # interpolation would reach the value after the gap
    poisoned = clean.copy()
    rng = np.random.default_rng(0)
    for col in ("a", "b", "c"):
        after = poisoned.index >= cut
        poisoned.loc[after, col] = np.where(poisoned.loc[after, col].isna(), np.nan,
                                            POISON * rng.uniform(0.5, 2.0, after.sum()))
    return clean, poisoned


@pytest.fixture(scope="module")
def quantile_run(trained_run, tmp_path_factory):
    """The trained run's data and settings with --quantiles 0.1,0.5,0.9: calibrated intervals to backtest."""
    report = api.train(trained_run.data, horizon=trained_run.horizon, lookback=trained_run.lookback,
                       quantiles=LEVELS, train_config=TINY, run_dir=tmp_path_factory.mktemp("bt-q") / "run",
                       **TINY_MODEL)
    return report.run_dir


@pytest.mark.parametrize("refit", [False, True], ids=["as-trained", "refit"])
def test_values_after_the_cutoff_never_reach_the_fold(quantile_run, tmp_path, monkeypatch, refit):
    # Fold 1 of 2 (horizon 6, step 6) sees the first 120 - 12 = 108 points. The run has calibrated
    # intervals: with --refit each fold calibrates on its own validation windows, inside its history.
    clean, poisoned = _frames(cut=108)
    clean_csv = write_frame(tmp_path / "clean.csv", clean)
    poisoned_csv = write_frame(tmp_path / "poisoned.csv", poisoned)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where refits train

    runs = [backtest(quantile_run, csv, folds=2, refit=refit)
            for csv in (clean_csv, poisoned_csv)]
    columns = ["forecast", "q0.1", "q0.5", "q0.9"]
    first, second = ([r["forecast"][r["forecast"]["fold"] == k][columns].to_numpy() for r in runs] for k in (1, 2))
    assert first[0].shape == (3 * 6, 4) and np.isfinite(first[0]).all()
    np.testing.assert_array_equal(first[0], first[1])  # bit for bit: nothing after the cut-off got in
    assert not np.allclose(second[0], second[1]), "the poison is inside fold 2's history: it must show there"
    assert runs[0]["folds"][0]["cutoff"] == "2024-01-05T11:00:00"  # the 108th hour
    assert list(scratch.iterdir()) == [], "refit runs leave nothing behind"


def test_backtest_scores_the_intervals_of_every_fold(quantile_run, trained_run, tmp_path):
    result = backtest(quantile_run, trained_run.data, folds=3, step=4)
    frame = result["forecast"]
    inside = (frame["q0.1"] <= frame["actual"]) & (frame["actual"] <= frame["q0.9"])
    for fold in result["folds"]:
        mine = inside[frame["fold"] == fold["fold"]].groupby(frame[frame.columns[0]]).mean()
        assert fold["intervals"]["intervals"]["80%"]["coverage"] == pytest.approx(mine.mean())
        assert fold["series"]["a"]["intervals"]["intervals"]["80%"]["coverage"] == pytest.approx(mine["a"])
    assert result["intervals"]["intervals"]["80%"]["coverage"] == pytest.approx(inside.groupby(
        [frame["fold"], frame[frame.columns[0]]]).mean().mean())
    assert result["intervals"]["pinball"] > 0

    out = tmp_path / "bt.json"
    summary = json.loads(invoke("evaluate", "--run", quantile_run, "--data", trained_run.data, "--backtest",
                                "--folds", "3", "--step", "4", "--output", out, "--json").stdout)
    assert [f["intervals"]["intervals"]["80%"]["coverage"] for f in summary["metrics"]["folds"]] == \
        [f["intervals"]["intervals"]["80%"]["coverage"] for f in result["folds"]]
    assert json.loads(out.read_text())["intervals"] == summary["metrics"]["intervals"]
    text = invoke("evaluate", "--run", quantile_run, "--data", trained_run.data, "--backtest", "--folds", "2").stdout
    assert text.count("80% interval (0.1-0.9): coverage") == 3  # each fold and all folds


def test_one_fold_is_the_plain_holdout_evaluation(trained_run):
    plain = api.evaluate(trained_run.run_dir, trained_run.data)
    fold = backtest(trained_run.run_dir, trained_run.data, folds=1)
    assert fold["overall"] == plain["overall"] and fold["baselines"] == plain["baselines"]
    assert fold["folds"][0]["series"] == plain["series"]


def test_plain_evaluate_does_not_look_past_its_holdout_either(trained_run, tmp_path):
    clean, poisoned = _frames(cut=120 - trained_run.horizon)
    results = [api.evaluate(trained_run.run_dir, write_frame(tmp_path / f"{k}.csv", frame), keep_forecasts=True)
               for k, frame in enumerate((clean, poisoned))]
    np.testing.assert_array_equal(*(r["forecast"]["forecast"].to_numpy() for r in results))
    assert not np.array_equal(*(r["forecast"]["actual"].to_numpy() for r in results))


def test_too_many_folds_name_the_series_and_what_to_do(trained_run):
    with pytest.raises(InputError, match=r"series 'a' has 120 points.*lower --folds or --step"):
        backtest(trained_run.run_dir, trained_run.data, folds=30)


def test_cli_backtest_json_output_and_summary(trained_run, tmp_path):
    out = tmp_path / "bt" / "backtest.json"
    result = invoke("evaluate", "--run", trained_run.run_dir, "--data", trained_run.data, "--backtest",
                    "--folds", "3", "--step", "4", "--output", out, "--json")
    summary = json.loads(result.stdout)
    assert summary["status"] == "ok" and summary["files"] == [str(out)] and summary["series"] == 2
    folds = summary["metrics"]["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3] and [f["before_end"] for f in folds] == [14, 10, 6]
    assert set(folds[0]["baselines"]) == {"naive", "seasonal_naive"}
    saved = json.loads(out.read_text())
    assert set(saved) == {"folds", "overall", "baselines", "horizon", "step", "season", "refit"}
    assert saved["step"] == 4 and saved["horizon"] == trained_run.horizon and saved["refit"] is False
    assert set(saved["folds"][2]["series"]) == {"a", "b"}
    # overall: the mean over every fold's series
    maes = [m["mae"] for f in saved["folds"] for m in f["series"].values()]
    assert saved["overall"]["mae"] == pytest.approx(np.mean(maes))

    table = invoke("evaluate", "--run", trained_run.run_dir, "--data", trained_run.data, "--backtest", "--folds", "2")
    assert "backtest: 2 folds of 6 steps, 6 apart" in table.stdout and "all folds" in table.stdout
    assert "fold 1/2: cut-off after 2024-01-05T11:00:00" in table.stderr


def test_backtest_options_need_backtest(trained_run):
    result = invoke("evaluate", "--run", trained_run.run_dir, "--data", trained_run.data, "--folds", "2",
                    "--refit", code=EXIT_INPUT)
    assert "--folds, --refit only apply with --backtest" in result.stderr


@pytest.mark.slow
def test_real_process_backtest_with_plots(cli, trained_run, tmp_path):
    plot = ["--plot", tmp_path / "plots"] if HAS_MATPLOTLIB else []
    done = cli("evaluate", "--run", trained_run.run_dir, "--data", trained_run.data, "--backtest", "--folds", "2",
               *plot, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert len(summary["metrics"]["folds"]) == 2 and summary["test_size"] == trained_run.horizon
    if HAS_MATPLOTLIB:
        assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["a.png", "b.png"]
        assert summary["files"] == [str(tmp_path / "plots" / n) for n in ("a.png", "b.png")]
