"""t5-small fine-tuned on WMT16 English→German with L2-SP, with T5's task prefix.

    accelerate launch recipes/t5_en_de.py --output_dir runs/t5-small-en-de-wmt16
    python recipes/t5_en_de.py --max_steps 50 --max_train_samples 5000 --output_dir runs/trial
    hf-l2mt train t5_en_de --l2sp_lambda 0.05

Every source sentence gets the prefix T5 was pre-trained with, "translate English to German: ",
built from src_lang and tgt_lang (--source_prefix replaces it). Every setting below is a flag, and
flags win over it (docs/recipes.md).
"""

from hf_l2mt.apps.recipes.runner import run

CONFIG = {
    "model_name_or_path": "t5-small",
    "src_lang": "en",
    "tgt_lang": "de",
    # WMT16 en-de: 4.5M training pairs; its validation split is newstest2015 (2,169 sentences).
    "train_source": "hub:wmt/wmt16:de-en",
    "eval_sources": ["newstest2015=hub:wmt/wmt16:de-en"],
    "eval_split": "validation",
    "per_device_train_batch_size": 32,
    "gradient_accumulation_steps": 2,  # 32 sentences * 2 accumulation = 64 per update and GPU
    "max_steps": 10_000,  # 10,000 updates * 64 = 640,000 pairs on one GPU, about 1/7 of WMT16
    "learning_rate": 3e-4,  # T5 is fine-tuned at a higher rate than Marian
    "warmup_steps": 500,  # 5% of the 10,000 updates
    # L2-SP towards t5-small's weights, at full strength all run long; tune it on newstest2015.
    "l2sp_lambda": 0.1,
    "l2sp_schedule": "constant",
    "weight_decay": 0.0,  # L2-SP replaces the pull towards zero
    "eval_strategy": "steps",
    "eval_steps": 1_000,  # 1,000 updates * 64 = every 64,000 pairs
    "save_steps": 1_000,
    "save_total_limit": 2,
    "logging_steps": 100,
    "per_device_eval_batch_size": 64,
    "generation_num_beams": 4,
    "generation_max_length": 128,
    "output_dir": "runs/t5-small-en-de-wmt16",
}


def main(argv=None):
    return run(CONFIG, argv, description=__doc__)


if __name__ == "__main__":
    main()
