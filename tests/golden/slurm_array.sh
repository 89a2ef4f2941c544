#!/bin/bash
#SBATCH --job-name=etl.transform
#SBATCH --cpus-per-task=4
#SBATCH --time=1-02:00:00
#SBATCH --signal=B:USR1@60
#SBATCH --mem=500M
#SBATCH --partition=gpu
#SBATCH --account=proj_42
#SBATCH --array=0-99%10
#SBATCH --output=/scratch/runs/r1/logs/transform/scheduler/%A_%a.log
#SBATCH --error=/scratch/runs/r1/logs/transform/scheduler/%A_%a.log
#SBATCH --open-mode=append
#SBATCH --constraint=a100
#SBATCH --exclusive
#SBATCH --gpus=1
#SBATCH --qos=long

exec /opt/venv/bin/python -m reflow.worker --wave /scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl --run-dir /scratch/runs/r1 --origin '{"script": "/home/ana/etl pipeline/etl.py"}' --workflow etl
