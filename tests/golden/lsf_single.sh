#!/bin/bash
#BSUB -J "etl.extract"
#BSUB -n 2
#BSUB -R "span[hosts=1] rusage[mem=4GB]"
#BSUB -M 4GB
#BSUB -W 10
#BSUB -wa USR1
#BSUB -wt 1
#BSUB -o /scratch/runs/r1/logs/extract/scheduler/%J.log
#BSUB -cwd /home/ana/project

exec /opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
