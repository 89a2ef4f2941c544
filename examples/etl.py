"""Fan-out / gather ETL: total revenue per region of a sales CSV.

    python examples/etl.py run --run-dir runs/etl --source examples/data/sales.csv

`extract` lists the regions, `transform` runs once per region (an array
task: one element per item of the list), and `load` gathers every element's
totals into one report in the run directory.  Run it twice: the second run
reuses every result from the cache.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

from reflow import Param, Result, RunDir, Workflow

wf = Workflow("etl")


@wf.job(cpus=1, time="00:05:00", mem="500M")
def extract(
    source: Annotated[Path, Param(help="CSV file with region,product,units,unit_price")],
) -> list[str]:
    """The regions found in the file, in order of first appearance."""
    with open(source, newline="") as fh:
        return list(dict.fromkeys(row["region"] for row in csv.DictReader(fh)))


@wf.array_job()
def transform(region: Annotated[str, Result(step="extract")], source: Path) -> dict[str, float]:
    """Units and revenue of one region."""
    units = revenue = 0.0
    with open(source, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["region"] == region:
                units += int(row["units"])
                revenue += int(row["units"]) * float(row["unit_price"])
    return {"region_units": units, "revenue": round(revenue, 2)}


@wf.job()
def load(
    totals: Annotated[list[dict[str, float]], Result(step="transform")],
    regions: Annotated[list[str], Result(step="extract")],
    run_dir: RunDir = RunDir(),
) -> Path:
    """Write report.csv with one line per region and return its path."""
    report = run_dir / "report.csv"
    with open(report, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["region", "units", "revenue"])
        for region, t in zip(regions, totals, strict=True):
            out.writerow([region, int(t["region_units"]), f"{t['revenue']:.2f}"])
    return report


if __name__ == "__main__":
    raise SystemExit(wf.cli())
