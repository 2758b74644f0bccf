#!/usr/bin/env bash
# The GPU check: L2-SP overhead, training throughput and evaluation speed of an opus-mt-en-de-sized
# Marian (74M parameters) on one CUDA GPU, bf16, in under 10 minutes. Logs and JSON go to $OUT.
#
# Needs python3 with torch (CUDA), transformers, accelerate, sentencepiece, sacrebleu; hf_l2mt is
# taken from this checkout (PYTHONPATH). Neither `datasets` nor the Ding file is needed there: the
# tokenised sample is written beforehand on any machine that has them, into the git-ignored outputs/
# folder, which has to travel with the checkout:
#
#   python -m benchmarks.throughput --export_sample outputs/throughput_sample --pairs 16384
#   python -m benchmarks.throughput --export_sample outputs/throughput_sample_sentences --data sentences --pairs 4096
#   OUT=/some/folder bash benchmarks/gpu_check.sh          # on the GPU machine
#
# The sentence-length sample (Ding entries joined to a median of 20 source words) is optional; without
# it the throughput step runs on dictionary entries only.
#
# Optional: EVAL_MODEL=folder with a trained model (save_pretrained, with its tokenizer) for the
# evaluation-speed run; without it that run uses a random-init Marian, whose output is noise and
# always runs to max_new_tokens, so sorting by length saves less than with a trained model.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_out}"
SAMPLE="${SAMPLE:-outputs/throughput_sample}"
SENTENCES="${SENTENCES:-outputs/throughput_sample_sentences}"
EVAL_MODEL="${EVAL_MODEL:-outputs/eval_model}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TOKENIZERS_PARALLELISM=false
if [ ! -f "$SAMPLE/sample.json" ]; then
    echo "gpu_check: $SAMPLE/sample.json not found; write it with:" >&2
    echo "  python -m benchmarks.throughput --export_sample $SAMPLE --pairs 16384" >&2
    exit 2
fi
status=0

run() {  # run NAME TIMEOUT_S COMMAND...: log to $OUT/NAME.log, keep going when one step fails
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" | tee "$OUT/$name.log"
    timeout "$limit" "$@" 2>&1 | tee -a "$OUT/$name.log"
    local code=${PIPESTATUS[0]}
    echo "== $name: exit $code" | tee -a "$OUT/$name.log"
    [ "$code" -eq 0 ] || status=1
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  date -u +%Y-%m-%dT%H:%M:%SZ; git rev-parse HEAD 2>/dev/null; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

# 1. L2-SP overhead per update: 5 variants (plain, coupled / decoupled with a float32 and a bfloat16 anchor)
#    x 7 rounds in rotated order x (1 left out + 10 timed) updates, batch 64 x 64 tokens.
run regularizer_overhead 180 python3 -m benchmarks.regularizer_overhead --device cuda --bf16 \
    --batch_size 64 --seq_len 64 --steps 10 --rounds 7 --json "$OUT/regularizer_overhead.json"

# 2. Throughput: baseline vs ours, 3 rounds x 1 epoch of 100 updates of 64 Ding pairs each (140 s on an H200).
run throughput 180 python3 -m benchmarks.throughput --tokenized_sample "$SAMPLE" --device cuda --bf16 \
    --model opus --batch_size 64 --steps 100 --rounds 3 --json "$OUT/throughput.json"

# 2b. The same on pairs of sentence length (4,096 in the sample: 64 x 50 updates an epoch).
if [ -f "$SENTENCES/sample.json" ]; then
    run throughput_sentences 180 python3 -m benchmarks.throughput --tokenized_sample "$SENTENCES" --device cuda \
        --bf16 --model opus --batch_size 64 --steps 50 --rounds 3 --json "$OUT/throughput_sentences.json"
fi

# 3. Evaluation speed: 2,000 Ding sentences, greedy, batch 64, 3 timed passes per variant.
model_flags=(--model opus)
[ -f "$EVAL_MODEL/config.json" ] && model_flags=(--model_dir "$EVAL_MODEL")
run eval_speed 90 python3 -m benchmarks.eval_speed --tokenized_sample "$SAMPLE" --device cuda --bf16 \
    "${model_flags[@]}" --sentences 2000 --batch_size 64 --max_new_tokens 32 --rounds 3 --json "$OUT/eval_speed.json"

exit $status
