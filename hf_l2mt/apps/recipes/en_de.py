"""Helsinki-NLP/opus-mt-en-de fine-tuned on WMT16 English→German with L2-SP.

    accelerate launch recipes/en_de.py --output_dir runs/opus-mt-en-de-wmt16
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml --num_processes 4 recipes/en_de.py
    python recipes/en_de.py --max_steps 50 --max_train_samples 5000 --output_dir runs/trial
    hf-l2mt train en_de --config my_settings.yaml --l2sp_lambda 0.05

Every setting below is a flag; flags in --config FILE win over it, and the command line wins over both
(docs/recipes.md).
"""

from hf_l2mt.apps.recipes.runner import run

CONFIG = {
    "model_name_or_path": "Helsinki-NLP/opus-mt-en-de",
    "src_lang": "en",
    "tgt_lang": "de",
    # WMT16 en-de: 4.5M training pairs; its validation split is newstest2015 (2,169 sentences).
    "train_source": "hub:wmt/wmt16:de-en",
    "eval_sources": ["newstest2015=hub:wmt/wmt16:de-en"],
    "eval_split": "validation",
    "per_device_train_batch_size": 16,
    "gradient_accumulation_steps": 4,  # 16 sentences * 4 accumulation = 64 per update and GPU
    "max_steps": 10_000,  # 10,000 updates * 64 = 640,000 pairs on one GPU, about 1/7 of WMT16
    "learning_rate": 2e-5,
    "warmup_steps": 500,  # 5% of the 10,000 updates
    # L2-SP: (λ/2)·‖θ − θ₀‖² towards opus-mt's own weights, at full strength all run long. A starting
    # point: raise it if newstest2015 BLEU falls, lower it if the training loss stalls.
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
    "output_dir": "runs/opus-mt-en-de-wmt16",
}


def main(argv=None):
    return run(CONFIG, argv, description=__doc__)


if __name__ == "__main__":
    main()
