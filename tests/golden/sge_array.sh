#!/bin/bash
#$ -N etl.transform
#$ -S /bin/bash
#$ -V
#$ -cwd
#$ -j y
#$ -o /scratch/runs/r1/logs/transform/scheduler/$JOB_ID.$TASK_ID.log
#$ -t 1-100
#$ -tc 10
#$ -pe smp 4
#$ -l h_rt=26:00:00
#$ -l s_rt=25:59:00
#$ -l h_vmem=125M
#$ -q gpu.q
#$ -A proj_42
#$ -l arch=lx-amd64
#$ -l gpus=1
#$ -notify
#$ -P genomics
#$ -r n
#$ -R y

trap '' USR1
/opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
status=$?
# SGE requeues a job that exits with 99 and holds one that exits with 100 in
# error state (Eqw), which would block the jobs after it: never pass them on
if [ "$status" -eq 99 ] || [ "$status" -eq 100 ]; then exit 1; fi
exit "$status"
