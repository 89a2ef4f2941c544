#!/bin/sh
# reflow job etl.dispatch for Flux: the flux submit reflow runs
# mem=1G is not passed: Flux jobs ask for cores, not memory
flux submit \
    --job-name=etl.dispatch \
    --cores-per-task=1 \
    --time-limit=600s \
    '--output=/scratch/runs/r1/logs/_dispatcher/{{id.dec}}.log' \
    --dependency=afterany:1873816223744 \
    --dependency=afterany:1873833000960 \
    --dependency=afterany:1873849778176 \
    '--env=GREETING=hello world' \
    --env=REFLOW_STORE_PATH=/shared/team/manifest.db \
    /opt/venv/bin/python -m reflow.dispatch --run-id etl-20260401-a1b2
