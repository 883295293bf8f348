#!/usr/bin/env bash
# Issue #29's CPU campaign: the four number tasks, the paper's protocol with 4 epochs (the epoch kept on validation
# with the calculator), the curation of #18 (consistency on), the recorded text-davinci-002 teacher (D=1);
# each Fine-tune-CoT student scored without and with the calculator, vanilla beside it (the prompting baselines
# left out: no student depends on them, and they cost a CPU hour). Cheapest first.
# Run it from a git worktree at a fixed commit, in the background; it is resumable (finished settings are cached
# in results/<task>/<setting>.json and skipped, a killed student resumes from its last epoch):
#
#   git worktree add ../calc HEAD && cd ../calc && PYTHONPATH=src nohup bash benchmarks/calculator_cpu.sh &
#
# Each finished setting's result file carries its command; copy it (and its predictions) into the main checkout
# and commit it as it lands.
set -uo pipefail
export FTCOT_DATA_DIR=${FTCOT_DATA_DIR:-../shared/data} PYTHONUNBUFFERED=1
PY=${PY:-.venv/bin/python}
for task in addsub single_eq multiarith svamp; do
  echo "== $(date -u +%FT%TZ) $task"
  $PY benchmarks/reproduce.py --tasks "$task" --protocol paper --epochs 4 --max-examples 0 --consistency on \
    --calculator --baselines none || echo "FAILED: $task"
done
echo "== $(date -u +%FT%TZ) done"
