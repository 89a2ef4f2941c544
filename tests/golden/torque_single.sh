#!/bin/bash
#PBS -N etl.extract
#PBS -S /bin/bash
#PBS -V
#PBS -l walltime=00:10:00
#PBS -l nodes=1:ppn=2
#PBS -l mem=4gb
#PBS -j oe
#PBS -o /scratch/runs/r1/logs/extract/scheduler/

exec >>/scratch/runs/r1/logs/extract/scheduler/"${PBS_JOBID}".log 2>&1
cd /home/ana/project
exec /opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
