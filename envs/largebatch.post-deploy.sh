#!/usr/bin/env bash
# Snakemake runs this once after creating the conda env, from the workflow's working
# directory (the repository root): install the largebatch library itself into the env.
set -euo pipefail
python -m pip install --no-deps -e "$PWD"
