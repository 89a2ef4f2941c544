#!/bin/bash
#BSUB -J "etl.dispatch"
#BSUB -n 1
#BSUB -R "rusage[mem=1GB]"
#BSUB -M 1GB
#BSUB -W 10
#BSUB -o /scratch/runs/r1/logs/_dispatcher/%J.log
#BSUB -w "ended(3001) && ended(3002)"

export GREETING='hello world'
export REFLOW_STORE_PATH=/shared/team/manifest.db
exec /opt/venv/bin/python -m reflow.dispatch --run-id etl-20260401-a1b2
