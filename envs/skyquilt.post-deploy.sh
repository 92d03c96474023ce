#!/usr/bin/env bash
# Runs once, inside a new rule environment made from skyquilt.yaml (`snakemake --use-conda`):
# installs the workflow's own package, skyquilt, whose third-party pins skyquilt.yaml lists.
# SKYQUILT_SOURCE is the workflow's directory; rules/common.smk sets it when the workflow is
# parsed, and Snakemake creates the environments from that process.
set -euo pipefail
: "${SKYQUILT_SOURCE:?is set by the skyquilt workflow when it is parsed}"
python -m pip install --no-deps --editable "$SKYQUILT_SOURCE"
