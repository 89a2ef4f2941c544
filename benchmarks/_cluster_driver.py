"""One run of a benchmark pipeline on a cluster, for either engine (see cluster_vs_peer.py).

    python _cluster_driver.py PIPELINE PARAMS_JSON RUN_DIR CHECK_TASK

Runs under reflow's Python or under reflow-hpc's (both are imported as
`reflow`): submits the pipeline from `slurm_pipelines/`, polls until the run
is no longer RUNNING, reads CHECK_TASK's output and prints one JSON line.
The store and the executor come from REFLOW_STORE_PATH and REFLOW_MODE.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    pipeline, params, run_dir, check = sys.argv[1:5]
    sys.path.insert(0, str(HERE / "slurm_pipelines"))
    module = importlib.import_module(pipeline)
    started = time.time()
    t0 = time.monotonic()
    run = module.wf.submit(run_dir, **json.loads(params))
    state = "RUNNING"
    while time.monotonic() - t0 < 1800:
        doc = run.status(as_dict=True)
        state = str(doc["run"]["status"])
        if state not in ("RUNNING", "PENDING"):
            break
        time.sleep(0.2)
    wall = time.monotonic() - t0
    try:
        output = run.store.get_singleton_output(run.run_id, check)
    except Exception as exc:
        output = f"cannot read the output: {exc}"
    print(json.dumps({"state": state, "wall": wall, "output": output, "started": started}))


if __name__ == "__main__":
    main()
