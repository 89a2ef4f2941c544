#!/bin/bash
#SBATCH --job-name=etl.extract
#SBATCH --cpus-per-task=2
#SBATCH --time=00:10:00
#SBATCH --signal=B:USR1@60
#SBATCH --mem=4G
#SBATCH --output=/scratch/runs/r1/logs/extract/scheduler/%j.log
#SBATCH --error=/scratch/runs/r1/logs/extract/scheduler/%j.log
#SBATCH --chdir=/home/ana/project
#SBATCH --open-mode=append

exec /opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
