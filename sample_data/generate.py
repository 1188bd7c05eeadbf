"""Generate the synthetic sample CSVs that ship with lstmcast.

Every file in this directory except this script and README.md is produced by
this script. The data is entirely synthetic: no real measurements are used.
Each series is built as trend x seasonality + noise, with the seasonality made
strong enough that an LSTM has something to learn beyond a naive
"repeat the last value" forecast.

Files
-----
hourly_load.csv
    Wide layout: ``timestamp,north,south``. Hourly electricity load in MW for
    two regions, 8 weeks (1344 rows) from 2024-01-01 00:00:00. Built from a
    daily profile with morning and evening peaks, a weekly cycle (weekends
    lower, with a later and flatter morning), a slow linear trend and AR(1)
    noise (so errors persist over a few hours, like real load).

store_sales.csv
    Long layout: ``store,date,sales``. Daily unit sales for four stores
    (store_a .. store_d) over 2023-01-01 .. 2023-12-31 (4 x 365 = 1460 rows),
    sorted by store then date. Built from a per-store base level, a weekly
    profile peaking on Saturday/Sunday, a mild yearly cycle peaking in
    December, multiplicative log-normal noise, then a Poisson draw so the
    values are non-negative integer counts.

monthly_revenue.csv
    Wide layout: ``month,revenue``. One monthly revenue series, 2012-01 ..
    2023-12 (144 rows). Built from an exponential growth trend times a fixed
    multiplicative yearly profile (Q4 high, February low) times log-normal
    noise.

Reproducibility
---------------
Run ``python sample_data/generate.py`` from any directory; output paths are
resolved relative to this file. Each file uses its own seeded
``numpy.random.Generator``, values are rounded and written with a fixed float
format and ``\\n`` line endings, so re-running rewrites the CSVs byte for byte.
Only numpy and pandas are required.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT_DIR = Path(__file__).resolve().parent

# One seed per file, so changing one generator never shifts another's numbers.
SEED_HOURLY_LOAD = 20240101
SEED_STORE_SALES = 20230101
SEED_MONTHLY_REVENUE = 20120101


def _bump(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Gaussian bump on a 24-hour circle (so a peak near midnight wraps)."""
    d = (x - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    """AR(1) noise with stationary std ``sigma``; real load errors are autocorrelated."""
    eps = rng.normal(0.0, sigma * np.sqrt(1.0 - phi**2), size=n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sigma)  # start in the stationary distribution
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out


def make_hourly_load(rng: np.random.Generator) -> pd.DataFrame:
    """Two regions of hourly electricity load (MW), 8 weeks, wide layout."""
    index = pd.date_range("2024-01-01 00:00:00", periods=8 * 7 * 24, freq="h")
    n = len(index)
    hour = np.asarray(index.hour, dtype=float)
    weekend = np.asarray(index.day_of_week) >= 5
    t_weeks = np.arange(n) / (7 * 24)

    # (base MW, morning peak, evening peak, weekend factor, trend per week, noise)
    # North is the larger, more industrial region: bigger weekday/weekend gap.
    # South is residential: evening peak dominates, load slowly rising.
    regions = {
        "north": (1450.0, 0.38, 0.30, 0.80, -0.004, 0.025),
        "south": (620.0, 0.22, 0.45, 0.90, 0.003, 0.030),
    }

    data: dict[str, object] = {"timestamp": index.strftime("%Y-%m-%d %H:%M:%S")}
    for name, (base, morning, evening, wknd, trend, noise) in regions.items():
        # Weekends: people get up later, so the morning peak shifts and flattens.
        morning_centre = np.where(weekend, 10.0, 8.0)
        morning_amp = np.where(weekend, 0.6 * morning, morning)
        profile = (
            0.75  # overnight floor relative to base
            + morning_amp * _bump(hour, morning_centre, 1.8)
            + evening * _bump(hour, 19.0, 2.2)
            + 0.12 * _bump(hour, 13.0, 3.5)  # broad daytime shoulder
        )
        level = base * (1.0 + trend * t_weeks) * np.where(weekend, wknd, 1.0)
        load = level * profile * (1.0 + _ar1(rng, n, phi=0.8, sigma=noise))
        data[name] = np.round(load, 1)
    return pd.DataFrame(data)


def make_store_sales(rng: np.random.Generator) -> pd.DataFrame:
    """Daily unit sales for four stores in 2023, long layout sorted by store, date."""
    dates = pd.date_range("2023-01-01", "2023-12-31", freq="D")
    dow = np.asarray(dates.day_of_week)
    doy = np.asarray(dates.day_of_year, dtype=float)

    # Mon..Sun multipliers: quiet early week, busy weekend.
    weekly = np.array([0.80, 0.85, 0.90, 0.95, 1.10, 1.45, 1.30])
    # Mild yearly cycle peaking around mid-December (day ~350).
    yearly = 1.0 + 0.12 * np.cos(2.0 * np.pi * (doy - 350.0) / 365.0)

    # (base units/day, weekly-strength, yearly growth over the year)
    # Weekly strength < 1 damps the weekend peak for shops with steadier trade.
    stores = {
        "store_a": (220.0, 1.00, 0.06),
        "store_b": (140.0, 0.80, 0.00),
        "store_c": (85.0, 1.20, 0.10),
        "store_d": (45.0, 0.60, -0.04),
    }

    frames = []
    for name, (base, strength, growth) in stores.items():
        week = 1.0 + strength * (weekly[dow] - 1.0)
        trend = 1.0 + growth * (doy - 1.0) / 364.0
        mean = base * trend * week * yearly
        # Log-normal day-to-day variation, then Poisson: counts are whole and >= 0.
        mean = mean * np.exp(rng.normal(0.0, 0.06, size=len(dates)))
        sales = rng.poisson(mean)
        frames.append(
            pd.DataFrame(
                {"store": name, "date": dates.strftime("%Y-%m-%d"), "sales": sales}
            )
        )
    return pd.concat(frames, ignore_index=True)


def make_monthly_revenue(rng: np.random.Generator) -> pd.DataFrame:
    """One monthly revenue series, 2012-01 .. 2023-12, wide layout."""
    months = pd.period_range("2012-01", "2023-12", freq="M")
    n = len(months)
    month_of_year = np.asarray(months.month) - 1
    t_years = np.arange(n) / 12.0

    # Jan..Dec multipliers (mean ~1): Feb trough, Q4 holiday peak.
    seasonal = np.array(
        [0.92, 0.82, 0.95, 0.97, 1.00, 0.98, 0.94, 0.96, 1.00, 1.05, 1.15, 1.26]
    )
    # ~7 %/yr compound growth from 125k: multiplicative seasonality then grows
    # with the level, which is the point of this series.
    trend = 125_000.0 * 1.07**t_years
    noise = np.exp(rng.normal(0.0, 0.03, size=n))
    revenue = trend * seasonal[month_of_year] * noise
    return pd.DataFrame(
        {"month": months.strftime("%Y-%m"), "revenue": np.round(revenue, 2)}
    )


def _write(df: pd.DataFrame, name: str, float_format: str) -> Path:
    """Write with fixed formatting so output is byte-identical across runs."""
    path = OUT_DIR / name
    df.to_csv(path, index=False, float_format=float_format, lineterminator="\n")
    return path


def main() -> None:
    written = [
        _write(
            make_hourly_load(np.random.default_rng(SEED_HOURLY_LOAD)),
            "hourly_load.csv",
            "%.1f",
        ),
        _write(
            make_store_sales(np.random.default_rng(SEED_STORE_SALES)),
            "store_sales.csv",
            "%.0f",  # sales are ints already; format only guards against floats
        ),
        _write(
            make_monthly_revenue(np.random.default_rng(SEED_MONTHLY_REVENUE)),
            "monthly_revenue.csv",
            "%.2f",
        ),
    ]
    for path in written:
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
