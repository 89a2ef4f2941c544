#!/bin/bash
#SBATCH --job-name=etl.dispatch
#SBATCH --cpus-per-task=1
#SBATCH --time=00:10:00
#SBATCH --mem=1G
#SBATCH --output=/scratch/runs/r1/logs/_dispatcher/%j.log
#SBATCH --error=/scratch/runs/r1/logs/_dispatcher/%j.log
#SBATCH --open-mode=append
#SBATCH --dependency=afterany:1001:1002:1003
#SBATCH --kill-on-invalid-dep=no

export GREETING='hello world'
export REFLOW_STORE_PATH=/shared/team/manifest.db
exec /opt/venv/bin/python -m reflow.dispatch --run-id etl-20260401-a1b2
