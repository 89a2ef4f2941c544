#!/bin/bash
#PBS -N etl.transform
#PBS -S /bin/bash
#PBS -V
#PBS -l walltime=26:00:00
#PBS -l nodes=1:ppn=4:gpus=1
#PBS -l mem=500mb
#PBS -q gpu
#PBS -A proj_42
#PBS -t 0-99%10
#PBS -j oe
#PBS -o /scratch/runs/r1/logs/transform/scheduler/
#PBS -m abe

exec >>/scratch/runs/r1/logs/transform/scheduler/"${PBS_JOBID}".log 2>&1
cd /home/ana/project
exec /opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
