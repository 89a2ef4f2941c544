#!/bin/sh
# reflow job etl.transform for Flux: the flux submit reflow runs
# array_parallelism 10: 10 ranges of --cc, each after every job of the range before (first range shown)
# mem=500M is not passed: Flux jobs ask for cores, not memory
cd /home/ana/project
# the command, hex-encoded below: /opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
flux submit \
    '--job-name=etl.transform.{cc}' \
    --cores-per-task=4 \
    --time-limit=93600s \
    --signal=SIGUSR1@60s \
    --queue=gpu \
    --setattr=system.bank=proj_42 \
    --cc=0-9 \
    '--output=/scratch/runs/r1/logs/transform/scheduler/{{id.dec}}.log' \
    --exclusive \
    --gpus-per-task=1 \
    /opt/venv/bin/python -c 'import json,os,sys;a=json.loads(bytes.fromhex(sys.argv[1]));os.execvp(a[0],a)' 5b222f6f70742f76656e762f62696e2f707974686f6e222c20222d6d222c20227265666c6f772e776f726b6572222c20222d2d77617665222c20222f736372617463682f72756e732f72312f776f726b2f65746c2d32303236303430312d613162322f7472616e73666f726d2e302e312e302e6a736f6e6c222c20222d2d72756e2d646972222c20222f736372617463682f72756e732f7231222c20222d2d6f726967696e222c20227b5c227363726970745c223a205c222f686f6d652f616e612f65746c20706970656c696e652f65746c2e70795c227d222c20222d2d776f726b666c6f77222c202265746c225d
