#!/usr/bin/env bash
# GPU-machine driver of tools/gpu/gpu_bench.py. Needs the carried .gpu/{whl,ours,data/c10.tar.gz}
# (tools/gpu/prepare.sh builds it). Run from anywhere; it works in the repository root.
#   tools/gpu/gpu_run.sh [ROW_FILTER...]     the benchmark (all rows, or the rows whose id
#                                            contains one of the filters), about 7 minutes
#   tools/gpu/gpu_run.sh --smoke [FILTER...] CPU plumbing check of our rows, tiny sizes, with
#                                            .venv/bin/python (or $PY); no wheels installed;
#                                            PEER_PY=/path/to/peer-venv/bin/python adds the
#                                            peer's rows
# Results: $OUT/results.jsonl (one JSON line per row), $OUT/table.txt (table and ratios),
# $OUT/all.log (everything), $OUT/run_logs.tar.gz (each row's log, train.log, config.json).
# BUDGET_S (default 575): seconds from the start within which everything ends; rows that no
# longer fit are recorded as skipped and the table is still printed.
set -u
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 LIGHTLY_TRAIN_EVENTS_DISABLED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
LOG=$OUT/all.log
B=tools/gpu/gpu_bench.py
t0=$(date +%s)
BUDGET=${BUDGET_S:-575}
say() { echo "[$(( $(date +%s) - t0 ))s] $*" | tee -a "$LOG"; }

if [ "${1:-}" = "--smoke" ]; then
  shift
  PY=${PY:-.venv/bin/python}
  only=(); [ $# -gt 0 ] && only=(--only "$@")
  peer=(); [ -n "${PEER_PY:-}" ] && peer=(--peer-python "$PEER_PY")
  exec "$PY" $B run --smoke --src "${CIFAR_SRC:-../shared/data/cifar10-train}" \
    --work "${WORK:-/tmp/gpu-smoke}" --out "$OUT" "${peer[@]}" "${only[@]}"
fi

say "gpu: $(nvidia-smi -L 2>&1 | head -1); cpus $(nproc); $(python3 -V 2>&1)"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
for p in .gpu/whl .gpu/ours .gpu/data/c10.tar.gz; do
  [ -e "$p" ] || { say "missing $p: run tools/gpu/prepare.sh here and carry .gpu"; exit 2; }
done

pi() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$@" >>"$LOG" 2>&1 || say "pip install into $1 failed (see all.log)"; }
W=.gpu/whl
rm -rf /tmp/common /tmp/ours /tmp/peer
pi /tmp/common $W/kornia-* $W/kornia_rs-* $W/lightly-1* $W/webdataset-* $W/braceexpand-* \
  $W/lightning_fabric-* $W/hydra_core-* $W/omegaconf-* $W/antlr4* $W/typing_extensions-*
pi /tmp/ours .gpu/ours/*.whl
pi /tmp/peer $W/lightly_train-* $W/albumentations-* $W/albucore-* $W/pydantic-* $W/pydantic_core-* \
  $W/annotated_types-* $W/typing_inspection-* $W/eval_type_backport-* $W/pycocotools-* \
  $W/stringzilla-* $W/simsimd-*
say "installed"
# Fail fast on a missing module (costs a few seconds): which side imports, with which version.
PYTHONPATH=/tmp/ours:/tmp/common python3 -c "import lightly_train, lt_data, lt_train, lt_methods; print('ours import ok', lightly_train.__version__, lightly_train.__file__)" 2>&1 | tail -3 | tee -a "$LOG"
PYTHONPATH=/tmp/peer:/tmp/common python3 -c "import lightly_train, lightly_train._commands.train; print('peer import ok', lightly_train.__version__)" 2>&1 | tail -3 | tee -a "$LOG"

rm -rf /tmp/c10 && mkdir -p /tmp/c10 && tar xzf .gpu/data/c10.tar.gz -C /tmp/c10
say "data unpacked: $(find /tmp/c10 -type f | wc -l) images"

only=(); [ $# -gt 0 ] && only=(--only "$@")
python3 $B run --out "$OUT" --src /tmp/c10 --work /tmp/gpu-work \
  --ours-path /tmp/ours:/tmp/common --peer-path /tmp/peer:/tmp/common \
  --deadline $(( t0 + BUDGET )) "${only[@]}"
rc=$?
say "all done rc=$rc"
exit $rc
