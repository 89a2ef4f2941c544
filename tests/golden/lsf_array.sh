#!/bin/bash
#BSUB -J "etl.transform[1-100]%10"
#BSUB -n 4
#BSUB -R "span[hosts=1] rusage[mem=500MB]"
#BSUB -M 500MB
#BSUB -W 26:00
#BSUB -wa USR1
#BSUB -wt 1
#BSUB -q gpu
#BSUB -P proj_42
#BSUB -o /scratch/runs/r1/logs/transform/scheduler/%J[%I].log
#BSUB -cwd /home/ana/project
#BSUB -app gpu_app
#BSUB -x

exec /opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
