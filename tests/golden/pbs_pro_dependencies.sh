#!/bin/bash
#PBS -N etl.dispatch
#PBS -S /bin/bash
#PBS -V
#PBS -l walltime=00:10:00
#PBS -l select=1:ncpus=1:mem=1gb
#PBS -j oe
#PBS -o /scratch/runs/r1/logs/_dispatcher/
#PBS -W depend=afterany:1001.pbsserver:1002[].pbsserver

exec >>/scratch/runs/r1/logs/_dispatcher/"${PBS_JOBID}".log 2>&1
export GREETING='hello world'
export REFLOW_STORE_PATH=/shared/team/manifest.db
exec /opt/venv/bin/python -m reflow.dispatch --run-id etl-20260401-a1b2
