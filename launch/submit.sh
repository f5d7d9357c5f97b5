#!/bin/bash
# Submit a whole run: phase 1, and phase 2 waiting for phase 1 to end successfully (sbatch afterok).
#
#   RUN_DIR=/shared/runs/jetmoe-8b bash launch/submit.sh [--section.key=value ...]
#
# Run it on the login node from the project folder (on the shared filesystem). The overrides go to phase 1,
# which saves them in the run folder for phase 2. Every setting of launch/train.sbatch (RUN_DIR, RUN_CONFIG,
# BATCH_TOKENS, GPUS_PER_NODE, ...) reaches the jobs through the environment; SBATCH_ARGS adds sbatch options
# to both jobs, e.g. SBATCH_ARGS="--partition=gpu --account=my-project --nodes=12".
set -euo pipefail
: "${RUN_DIR:?set RUN_DIR to the run folder on the shared filesystem, e.g. RUN_DIR=/shared/runs/jetmoe-8b}"
here=$(cd "$(dirname "$0")" && pwd)
read -r -a extra <<< "${SBATCH_ARGS:-}"
one=$(sbatch --parsable --export=ALL "${extra[@]}" "$here/train.sbatch" 1 "$@")
one=${one%%;*}   # --parsable prints "<job id>[;<cluster>]"
two=$(sbatch --parsable --export=ALL "${extra[@]}" --dependency="afterok:$one" "$here/train.sbatch" 2)
two=${two%%;*}
echo "phase 1: job $one; phase 2: job $two (waits for job $one to end successfully)"
echo "follow: squeue -j $one,$two; tail -f slurm-jetmoe-8b-$one.out; metrics in $RUN_DIR/metrics.jsonl"
