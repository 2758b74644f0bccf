#!/usr/bin/env bash
# The Ding (or gettext) forgetting study on one CUDA GPU within one call of about 9 minutes: pretrain two bases side by
# side (one per learning rate, same batch and warm-up), keep the one with the lower training loss, then
# fine-tune every variant of benchmarks/domain_adaptation.py in SHARDS processes sharing the GPU.
# Whatever the time limit leaves undone is finished later, anywhere, by rerunning the study on the
# returned base and runs.jsonl (each run records the device it ran on).
#
# Needs python3 with torch (CUDA) and hf_l2mt's requirements; hf_l2mt is taken from this checkout.
# TASK=ding (default): the Ding file is read from $DING (default /usr/share/trans/de-en; an .xz copy is unpacked
# first). TASK=gettext: the corpus is read from $GETTEXT_CORPUS, the folder that
# `python -m benchmarks.gettext_corpus --output_dir FOLDER` writes here (the GPU machine cannot download
# Debian packages), with $DOMAIN held out (default postgresql).
# TOKENIZER: a folder with the task's SentencePiece tokenizer to reuse (else one is trained on the spot).
#
#   OUT=/some/folder bash benchmarks/study_gpu.sh                       # on the GPU machine
#   # back here, with the base and runs.jsonl unpacked (see docs/benchmarks.md):
#   python -m benchmarks.domain_adaptation --task ding --stage study --cache_dir CACHE --output_dir STUDY
#   TASK=gettext GETTEXT_CORPUS=outputs/gettext_corpus OUT=/some/folder bash benchmarks/study_gpu.sh
#
# Outputs in $OUT: ${TASK}_gpu_results.tgz (logs, every progress.json, runs.jsonl; not the Fisher) and the chosen
# base (model, tokenizer, progress.json; no optimizer state) as ${TASK}_gpu_base.tgz.part-aa, -ab, ...
set -uo pipefail
cd "$(dirname "$0")/.."
TASK="${TASK:-ding}"
OUT="${OUT:-./${TASK}_gpu_out}"
DING="${DING:-/usr/share/trans/de-en}"
GETTEXT_CORPUS="${GETTEXT_CORPUS:-}"
DOMAIN="${DOMAIN:-postgresql}"
TOKENIZER="${TOKENIZER:-}"
PYTHON="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
BUDGET_S="${BUDGET_S:-540}"             # wall-clock seconds for everything, packing included
PRETRAIN_MINUTES="${PRETRAIN_MINUTES:-4}"  # training time of each base (loading the data comes on top)
LRS="${LRS:-2e-4 4e-4}"
BATCH="${BATCH:-256}"
SHARDS="${SHARDS:-6}"
EXTRA="${EXTRA:-}"                      # more domain_adaptation flags for both stages (tests: a tiny study)
WORK="${WORK:-/tmp/${TASK}_gpu}"
mkdir -p "$OUT" "$WORK/logs"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 \
    HF_DATASETS_DISABLE_PROGRESS_BARS=1
case "$TASK" in
    ding)
        if [ -f "$DING.xz" ] && [ ! -f "$DING" ]; then xz -dk "$DING.xz"; fi
        [ -f "$DING" ] || { echo "study_gpu: $DING not found (apt-get install trans-de-en, or set DING)" >&2; exit 2; }
        task_flags=(--task ding --ding_path "$DING") ;;
    gettext)
        [ -f "$GETTEXT_CORPUS/pairs.jsonl" ] || { echo "study_gpu: GETTEXT_CORPUS=$GETTEXT_CORPUS has no pairs.jsonl" \
            "(write it with: python -m benchmarks.gettext_corpus --output_dir FOLDER)" >&2; exit 2; }
        task_flags=(--task gettext --domain "$DOMAIN" --gettext_corpus "$GETTEXT_CORPUS") ;;
    *) echo "study_gpu: TASK=$TASK; accepted: ding, gettext" >&2; exit 2 ;;
esac
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  "$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  date -u +%Y-%m-%dT%H:%M:%SZ; git rev-parse HEAD 2>/dev/null; } > "$WORK/logs/machine.txt" 2>&1
cat "$WORK/logs/machine.txt"
common=("${task_flags[@]}" --device "$DEVICE" $EXTRA)

pack() {  # the results first (small), then the chosen base in pieces under 16 MB
    tar -C "$WORK" --exclude="*.safetensors" -czf "$OUT/${TASK}_gpu_results.tgz" logs $(cd "$WORK" && ls -d base_*/progress.json study 2>/dev/null)
    if [ -n "${best:-}" ] && [ -f "$WORK/$best/base/config.json" ]; then
        tar -C "$WORK" -czf - "$best/base" "$best/tokenizer" "$best/progress.json" \
            | split -b 15M - "$OUT/${TASK}_gpu_base.tgz.part-"
    fi
    ls -l "$OUT"
}

# 1. Two bases side by side, one per learning rate.
for lr in $LRS; do
    mkdir -p "$WORK/base_$lr"
    [ -n "$TOKENIZER" ] && cp -r "$TOKENIZER" "$WORK/base_$lr/tokenizer"
    "$PYTHON" -m benchmarks.domain_adaptation "${common[@]}" --stage pretrain --cache_dir "$WORK/base_$lr" \
        --pretrain_minutes "$PRETRAIN_MINUTES" --pretrain_batch_size "$BATCH" --pretrain_lr "$lr" --threads 2 \
        > "$WORK/logs/pretrain_$lr.log" 2>&1 &
done
wait
tail -n 3 "$WORK"/logs/pretrain_*.log
best=$("$PYTHON" - "$WORK" $LRS <<'PY'
import json, os, sys
work, lrs = sys.argv[1], sys.argv[2:]
losses = {}
for lr in lrs:
    path = os.path.join(work, f"base_{lr}", "progress.json")
    if os.path.isfile(path):
        progress = json.load(open(path))
        print(f"lr {lr}: {progress['steps']} updates, {progress['train_seconds']:.0f} s, last loss {progress['last_loss']}",
              file=sys.stderr)
        # fewer than 200 updates log no loss: such a base ranks last
        losses[lr] = progress["last_loss"] if progress.get("last_loss") is not None else float("inf")
print(f"base_{min(losses, key=losses.get)}" if losses else "")
PY
)
echo "chosen: ${best:-none}"
[ -n "$best" ] || { pack; exit 1; }

# 2. The study, SHARDS processes on the one GPU; stopped in time to pack what is done.
left=$((BUDGET_S - SECONDS - 30))
for ((i = 0; i < SHARDS; i++)); do
    timeout "$left" "$PYTHON" -m benchmarks.domain_adaptation "${common[@]}" --stage study --cache_dir "$WORK/$best" \
        --output_dir "$WORK/study" --shard "$i/$SHARDS" > "$WORK/logs/study_$i.log" 2>&1 &
done
wait
grep -h "seed\|missing\|Error" "$WORK"/logs/study_*.log | tail -n 60
echo "runs: $(wc -l < "$WORK/study/runs.jsonl" 2>/dev/null || echo 0) lines in runs.jsonl after ${SECONDS} s"
pack
