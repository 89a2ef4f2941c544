"""Pipelines for the Slurm benchmark, importable by the jobs."""
