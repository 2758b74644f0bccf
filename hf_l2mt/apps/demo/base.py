"""Steps 2 and 3: the tokenizer and the base model pretrained on cardinals, cached by the hash of their settings."""

import hashlib
import json
import os
import shutil
from importlib.metadata import version

from transformers import GenerationConfig, MarianConfig, MarianMTModel, set_seed

from ...atomic_write import atomic_path
from .spm_tokenizer import load_marian_tokenizer, train_marian_tokenizer
from .arguments import BATCH_SIZE, GENERAL_DOMAIN, LEARNING_RATE, MAX_LENGTH, DemoArguments
from .output import fresh_dir
from .training import tokenized, train

# Bump when the cached base's recipe changes in a way the settings do not show. 2: SentencePiece on one
# thread and pinned arithmetic (reproducible.py); 3: early_stopping in the generation config.
CACHE_FORMAT = 3
TOKENIZER_PAIRS = 5_000  # every word of the cardinals occurs in far fewer; more only slows SentencePiece down


def base_settings(args: DemoArguments) -> dict:
    """Everything the pretrained base depends on; its hash names the cache folder."""
    return {
        "cache_format": CACHE_FORMAT,
        "num2words": version("num2words"),
        "domain": GENERAL_DOMAIN,
        "train_size": args.train_size,
        "test_size": args.test_size,  # the training numbers are drawn after the held-out ones
        "seed": args.seed,
        "pretrain_steps": args.pretrain_steps,
        "learning_rate": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "vocab_size": args.vocab_size,
        "model": args.model,
    }


def base_dir(args: DemoArguments) -> str:
    digest = hashlib.sha256(json.dumps(base_settings(args), sort_keys=True).encode()).hexdigest()[:12]
    return os.path.join(args.cache_dir, f"numbers_base-{digest}")


def model_config(tokenizer, spec: dict) -> MarianConfig:
    return MarianConfig(
        vocab_size=len(tokenizer),
        d_model=spec["d_model"],
        encoder_layers=spec["layers"],
        decoder_layers=spec["layers"],
        encoder_attention_heads=spec["heads"],
        decoder_attention_heads=spec["heads"],
        encoder_ffn_dim=spec["ffn_dim"],
        decoder_ffn_dim=spec["ffn_dim"],
        max_position_embeddings=MAX_LENGTH,
        dropout=0.1,
        # Token embeddings times sqrt(d_model), as in opus-mt's Marian configs; without it the tokens'
        # embeddings (std 0.02) are drowned by the sinusoidal positions and learning stalls for hundreds of steps.
        scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,  # Marian decoders start from <pad>
        forced_eos_token_id=tokenizer.eos_token_id,
    )


def new_model(tokenizer, spec: dict, seed: int) -> MarianMTModel:
    set_seed(seed)
    model = MarianMTModel(model_config(tokenizer, spec))
    model.generation_config = GenerationConfig(
        decoder_start_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bad_words_ids=[[tokenizer.pad_token_id]],
        max_length=MAX_LENGTH,
        # Beam search (hf-l2mt translate's default of 4 beams; the demo itself decodes greedily) stops once
        # num_beams hypotheses have finished: the rule CTranslate2 follows too (patience 1), so an export decodes
        # exactly as PyTorch does (docs/export.md#beam-search-in-an-export). transformers refuses to save
        # early_stopping beside num_beams=1.
        num_beams=4,
        early_stopping=True,
    )
    return model


def pretrain(args: DemoArguments, general_train) -> str:
    """Train the tokenizer and the base on cardinals into a temporary folder, then rename it into the cache."""
    target = base_dir(args)
    os.makedirs(args.cache_dir, exist_ok=True)
    work = fresh_dir(args.cache_dir, os.path.basename(target))
    try:
        sample = general_train.select(range(min(TOKENIZER_PAIRS, len(general_train))))
        texts = list(sample["source"]) + list(sample["target"])
        tokenizer = train_marian_tokenizer(texts, work, vocab_size=args.vocab_size)
        model = new_model(tokenizer, args.model, args.seed)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"  model: MarianMTModel, {trainable:,} trainable parameters, vocabulary {len(tokenizer)}")
        train(model, tokenizer, tokenized(general_train, tokenizer), args.pretrain_steps, args.seed, "pretraining",
              lr_scheduler_type="linear", warmup_steps=max(1, args.pretrain_steps // 20))
        model.save_pretrained(work)
        with atomic_path(os.path.join(work, "base_settings.json")) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            json.dump(base_settings(args), handle, indent=2)
        try:
            os.rename(work, target)
        except OSError:
            if not os.path.isdir(target):  # else another run cached the same base meanwhile: keep theirs
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def load_base(args: DemoArguments) -> tuple:
    """``(tokenizer, model)`` from the cache folder of these settings."""
    path = base_dir(args)
    return load_marian_tokenizer(path), MarianMTModel.from_pretrained(path)
