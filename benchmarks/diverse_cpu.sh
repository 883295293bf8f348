#!/usr/bin/env bash
# Issue #28's CPU campaign: Fine-tune-CoT from gpt-3.5-turbo-instruct's rationales (Mentor-KD's release) at
# D = 1 and D = 6, the paper's protocol with 3 epochs for every D (the epoch kept on validation), the curation
# of #18 (consistency on), vanilla beside each; cheapest first, so that what lands first is a whole D pair.
# Run it from a git worktree at a fixed commit, in the background; it is resumable (finished settings are cached
# in results/<task>/<setting>.json and skipped, a killed student resumes from its last epoch):
#
#   git worktree add ../campaign HEAD && cd ../campaign && PYTHONPATH=src nohup bash benchmarks/diverse_cpu.sh &
#
# Each finished setting's result file carries its command; copy it (and its predictions) into the main checkout
# and commit it as it lands.
set -uo pipefail
export FTCOT_DATA_DIR=${FTCOT_DATA_DIR:-../shared/data} PYTHONUNBUFFERED=1
PY=${PY:-.venv/bin/python}
COMMON="--protocol paper --epochs 3 --max-examples 0 --consistency on --teacher gpt-3.5-turbo-instruct --baselines none"
# Last Letter's D curve and second seeds first; then what fits in a session's remaining hour or so (Tracking D=1,
# Date D=2), then Date D=6 (480 steps: about two hours on two idle cores), Date D=1's second seed, Date D=4
# (320 steps, about an hour), Date D=6's second seed and Tracking D=6 (about 70 minutes an epoch before 0097831:
# Tracking D=1's 456 examples took 11.5 minutes an epoch, D=6 keeps about six times as many). The Last Letter rows
# were curated before 6f1f119 (letter strings read from quotes only); rerun at a later commit, their curation keeps
# about 4% more rationales.
for run in "last_letter_concatenation 1" "last_letter_concatenation 6" "date_understanding 1" \
           "last_letter_concatenation 1 --seeds 2" "last_letter_concatenation 2" \
           "last_letter_concatenation 4" "last_letter_concatenation 6 --seeds 2" "tracking_shuffled_objects 1" \
           "date_understanding 2" "date_understanding 6" "date_understanding 1 --seeds 2" "date_understanding 4" \
           "date_understanding 6 --seeds 2" "tracking_shuffled_objects 6"; do
  set -- $run
  task=$1 d=$2; shift 2
  extra=""; [ "$task" != last_letter_concatenation ] && extra="--choice-by-content"
  echo "== $(date -u +%FT%TZ) $task D=$d $*"
  $PY benchmarks/reproduce.py --tasks "$task" $COMMON --num-samples "$d" $extra "$@" || echo "FAILED: $task D=$d"
done
echo "== $(date -u +%FT%TZ) done"
