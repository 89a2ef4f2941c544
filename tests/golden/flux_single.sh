#!/bin/sh
# reflow job etl.extract for Flux: the flux submit reflow runs
# mem=4G is not passed: Flux jobs ask for cores, not memory
cd /home/ana/project
flux submit \
    --job-name=etl.extract \
    --cores-per-task=2 \
    --time-limit=600s \
    --signal=SIGUSR1@60s \
    '--output=/scratch/runs/r1/logs/extract/scheduler/{{id.dec}}.log' \
    /opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
