#!/bin/bash
#$ -N etl.dispatch
#$ -S /bin/bash
#$ -V
#$ -cwd
#$ -j y
#$ -o /scratch/runs/r1/logs/_dispatcher/$JOB_ID.log
#$ -hold_jid 1001,1002,1003
#$ -l h_rt=0:10:00
#$ -l h_vmem=1G

export GREETING='hello world'
export REFLOW_STORE_PATH=/shared/team/manifest.db
/opt/venv/bin/python -m reflow.dispatch --run-id etl-20260401-a1b2
status=$?
# SGE requeues a job that exits with 99 and holds one that exits with 100 in
# error state (Eqw), which would block the jobs after it: never pass them on
if [ "$status" -eq 99 ] || [ "$status" -eq 100 ]; then exit 1; fi
exit "$status"
