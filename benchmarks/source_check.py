"""Does a translation model read its source? A cheap check for a base pretrained from scratch.

A model whose encoder has collapsed (its output no longer depends on the input) still lowers its
loss by learning the target side's word distribution, and its greedy output is the same few words
for every input. Two numbers show it without any decoding:

  loss, aligned vs shuffled   held-out cross-entropy per target token with the right sources, and
                              with the sources shuffled among the pairs; equal when the source is ignored
  encoder spread              standard deviation across sentences of the encoder's output at the first
                              position, averaged over its dimensions; ~0 when every input encodes alike

    python -m benchmarks.source_check --model_dir ~/.cache/hf_l2mt/ding_base/base
"""

import argparse
import random

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from benchmarks import forgetting_tasks as tasks


def held_out_loss(model, tokenizer, sources: list[str], targets: list[str], batch_size: int, max_length: int) -> float:
    total, tokens = 0.0, 0
    for start in range(0, len(sources), batch_size):
        batch = tokenizer(sources[start:start + batch_size], text_target=targets[start:start + batch_size],
                          padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        batch["labels"][batch["labels"] == tokenizer.pad_token_id] = -100
        count = int((batch["labels"] != -100).sum())
        total += float(model(**batch).loss) * count
        tokens += count
    return total / tokens


def encoder_spread(model, tokenizer, sources: list[str], max_length: int) -> float:
    batch = tokenizer(sources, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    first = model.get_encoder()(**batch).last_hidden_state[:, 0]
    return float(first.std(dim=0).mean())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="a model folder written by save_pretrained, with tokenizer")
    parser.add_argument("--tag", default="med.", help="the Ding split whose held-out general pairs are used")
    parser.add_argument("--heldout", type=int, default=500)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="of the shuffle")
    parser.add_argument("--threads", type=int, default=1)
    opts = parser.parse_args(argv)
    torch.set_num_threads(opts.threads)
    tokenizer = AutoTokenizer.from_pretrained(opts.model_dir, local_files_only=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(opts.model_dir, local_files_only=True).eval()
    pairs = tasks.ding_task(opts.tag, heldout=opts.heldout).general_test
    sources, targets = list(pairs["source"]), list(pairs["target"])
    shuffled = sources[:]
    random.Random(opts.seed).shuffle(shuffled)
    with torch.inference_mode():
        result = {
            "aligned_loss": held_out_loss(model, tokenizer, sources, targets, opts.batch_size, opts.max_length),
            "shuffled_loss": held_out_loss(model, tokenizer, shuffled, targets, opts.batch_size, opts.max_length),
            "encoder_spread": encoder_spread(model, tokenizer, sources[:opts.batch_size], opts.max_length),
        }
    print(f"{opts.model_dir}: {len(sources)} held-out general pairs")
    print(f"loss per target token: aligned {result['aligned_loss']:.3f}, shuffled sources {result['shuffled_loss']:.3f}")
    print(f"encoder spread across {opts.batch_size} sentences: {result['encoder_spread']:.3g}")
    return result


if __name__ == "__main__":
    main()
