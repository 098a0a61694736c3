"""Fleet simulator throughput: simulated meter-days per second on one core.

Run with ``python bench/bench_fleet.py``. The target in the meter issue is a month of 100 000 meters in under
three minutes on one core: 3 000 000 meter-days in 180 s, about 16 700 meter-days per second. Each figure is
the median of several runs of a smaller fleet (every household runs the full meter model and its top-ups
are real STS tokens, so the rate does not depend on the fleet's size).
"""

from __future__ import annotations

import statistics
import time
from datetime import date

from citygas.meters.fleet import simulate_fleet

RUNS = 5
METERS = 2_000
DAYS = 30
TARGET = 100_000 * 30 / 180


def main() -> None:
    simulate_fleet(50, 5, seed=0, start=date(2025, 1, 1))  # warm up imports and tables
    rates = []
    result = None
    for run in range(RUNS):
        started = time.perf_counter()
        result = simulate_fleet(METERS, DAYS, seed=run, start=date(2025, 1, 1))
        rates.append(result.meter_days / (time.perf_counter() - started))
    assert result is not None
    rate = statistics.median(rates)
    print(f"fleet of {METERS:,} meters x {DAYS} days, median of {RUNS} runs")
    print(f"meter-days/s:                          {rate:>10,.0f}")
    print(f"target meter-days/s (100k x 30 d / 180 s): {TARGET:>6,.0f}")
    print(f"ratio to target:                       {rate / TARGET:>10.2f}")
    print(f"100 000 meters x 30 days would take:   {3_000_000 / rate:>10,.0f} s")
    print(f"mean SCM per meter-day (last run):     {result.mean_litres_per_meter_day / 1000:>10.3f}")
    print(f"target: {'met' if rate >= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
