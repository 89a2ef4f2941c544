#!/bin/bash
#$ -N etl.extract
#$ -S /bin/bash
#$ -V
#$ -wd /home/ana/project
#$ -j y
#$ -o /scratch/runs/r1/logs/extract/scheduler/$JOB_ID.log
#$ -pe smp 2
#$ -l h_rt=0:10:00
#$ -l s_rt=0:09:00
#$ -l h_vmem=2G

trap '' USR1
/opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
status=$?
# SGE requeues a job that exits with 99 and holds one that exits with 100 in
# error state (Eqw), which would block the jobs after it: never pass them on
if [ "$status" -eq 99 ] || [ "$status" -eq 100 ]; then exit 1; fi
exit "$status"
