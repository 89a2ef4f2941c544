"""A pipeline that fails on purpose, and is fixed with `retry`.

    mkdir -p runs
    cp -r examples/data/readings runs/readings
    python examples/stations.py run --run-dir runs/stations --readings runs/readings
    # station_b fails: its file has 'n/a' in hour 2.  Fix the data, then:
    sed -i 's/n\\/a/10.1/' runs/readings/station_b.csv
    python examples/stations.py retry RUN_ID

`retry` reruns only the failed element and what was skipped because of it;
the stations that succeeded are not computed again.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

from reflow import Param, Result, Workflow

wf = Workflow("stations")


@wf.job()
def find(readings: Annotated[Path, Param(help="folder of <station>.csv files")]) -> list[Path]:
    """Every station file in the folder, sorted by name."""
    files = sorted(Path(readings).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no .csv files in {readings}")
    return files


@wf.array_job()
def daily_mean(path: Annotated[Path, Result(step="find")]) -> tuple[str, float]:
    """The mean temperature of one station; fails on a value that is not a number."""
    values = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                values.append(float(row["celsius"]))
            except ValueError:
                raise ValueError(
                    f"{path.name}, hour {row['hour']}: {row['celsius']!r} is not a temperature"
                ) from None
    return path.stem, round(sum(values) / len(values), 2)


@wf.job()
def summary(means: Annotated[list[tuple[str, float]], Result(step="daily_mean")]) -> str:
    """One line per station, coldest first."""
    return "\n".join(f"{name}: {mean:+.2f} C" for name, mean in sorted(means, key=lambda m: m[1]))


if __name__ == "__main__":
    raise SystemExit(wf.cli())
