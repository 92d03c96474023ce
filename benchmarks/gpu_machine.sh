#!/usr/bin/env bash
# `make bench-gpu` on a GPU machine that has Python and a CUDA build of torch but no package
# registry: make .venv from the wheels that `make bench-gpu-wheels` put in
# benchmarks/output/wheels (copy that folder along with the repository), run the measurement,
# and copy its results to $OUT (default benchmarks/output/gpu/results):
#
#   OUT=/some/dir bash benchmarks/gpu_machine.sh [make arguments]
#
# Arguments go to `make bench-gpu`; `GPU_DEVICE=cpu GPU_FLAGS=--quick` rehearses the whole
# script on a machine without a GPU.
# $OUT gets bench-gpu.log (everything printed), results-gpu.csv (the header and the rows this
# run appended to benchmarks/results.csv) and workflow-logs.tar.gz (the workflow run's job
# logs). The exit status is that of `make bench-gpu` (124: stopped at the time limit).
# GPU_MACHINE_SECONDS (default 560) bounds the whole script, so that on a machine whose
# commands are stopped after 10 minutes the results found so far are still copied.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/output/gpu/results}"
wheels=benchmarks/output/wheels
python="${PYTHON_BASE:-python3}"
began=$(date +%s)
mkdir -p "$out"
if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    echo "gpu_machine.sh: no wheels in $wheels; run 'make bench-gpu-wheels' where pip can download" >&2
    exit 2
fi

# The machine's own torch (built for its CUDA driver) stays where it is: .venv sees that
# Python's site-packages (and runs its .pth files) through a .pth file of its own, after its
# own packages, so the wheels' versions win.
rm -rf .venv
"$python" -m venv .venv
machine_site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
venv_site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "import site; site.addsitedir('$machine_site')" >"$venv_site/gpu-machine.pth"
.venv/bin/python -m pip install --quiet --no-index --no-deps "$wheels"/*.whl
.venv/bin/python -m pip install --quiet --no-index --no-deps --no-build-isolation \
    --editable . --editable tests/support
touch .venv/.installed # the Makefile's stamp: the environment is complete
.venv/bin/python -c 'import torch, skyquilt.jobs.generate, snakemake
print(f"gpu_machine.sh: torch {torch.__version__}, CUDA devices: {torch.cuda.device_count()}")'
echo "gpu_machine.sh: environment made in $(($(date +%s) - began)) s"

rows=$(wc -l <benchmarks/results.csv)
left=$((${GPU_MACHINE_SECONDS:-560} - ($(date +%s) - began)))
left=$((left > 1 ? left : 1)) # timeout 0 would mean no limit
set +e
PYTHONUNBUFFERED=1 timeout "$left" make bench-gpu "$@" 2>&1 | tee "$out/bench-gpu.log"
status=${PIPESTATUS[0]}
set -e
{
    head -n 1 benchmarks/results.csv
    tail -n +"$((rows + 1))" benchmarks/results.csv
} >"$out/results-gpu.csv"
if [ -d benchmarks/output/gpu/workflow/results/logs ]; then
    tar -czf "$out/workflow-logs.tar.gz" -C benchmarks/output/gpu/workflow/results logs
fi
echo "gpu_machine.sh: make bench-gpu exited $status; $(($(date +%s) - began)) s in all" \
    | tee -a "$out/bench-gpu.log"
exit "$status"
