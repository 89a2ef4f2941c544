#!/bin/bash
#PBS -N etl.transform
#PBS -S /bin/bash
#PBS -V
#PBS -l walltime=26:00:00
#PBS -l select=1:ncpus=4:mem=500mb:ngpus=1
#PBS -q gpu
#PBS -A proj_42
#PBS -J 0-99%10
#PBS -j oe
#PBS -o /scratch/runs/r1/logs/transform/scheduler/
#PBS -l place=scatter
#PBS -m abe

exec >>/scratch/runs/r1/logs/transform/scheduler/"${PBS_JOBID}".log 2>&1
cd /home/ana/project
exec /opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
