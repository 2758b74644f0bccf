"""Helsinki-NLP/opus-mt-de-en adapted from general text to medicine (Ding's [med.] entries) with L2-SP.

    accelerate launch recipes/domain_adapt.py --output_dir runs/opus-mt-de-en-med
    python recipes/domain_adapt.py --domain comp. --output_dir runs/opus-mt-de-en-comp
    python recipes/domain_adapt.py --train_source data/clinic.tsv --eval_holdout 1000 --output_dir runs/clinic
    hf-l2mt train domain_adapt --l2sp_lambda 2.0

The model is scored on held-out in-domain pairs (eval_in_domain_bleu, ...) and on general news
(eval_general_bleu, ...): the first should rise, the second should not fall much; λ trades one for
the other. Ding is read from /usr/share/trans/de-en (Debian package trans-de-en). Every setting
below is a flag, and flags win over it (docs/recipes.md).
"""

from hf_l2mt.apps.recipes.runner import run

CONFIG = {
    "model_name_or_path": "Helsinki-NLP/opus-mt-de-en",
    "src_lang": "de",
    "tgt_lang": "en",
    # In-domain: Ding's [med.] entries, about 7,200 pairs; 500 are held out, about 6,700 are trained on.
    "train_source": "ding",
    "domain": "med.",
    "eval_holdout": 500,
    "eval_holdout_name": "in_domain",
    # General: the first 500 of newstest2015's 2,169 sentences (WMT16's validation split).
    "eval_sources": ["general=hub:wmt/wmt16:de-en"],
    "eval_split": "validation",
    "max_eval_samples": 500,
    "max_source_length": 64,  # dictionary entries are short; news sentences longer than that are truncated
    "max_target_length": 64,
    "per_device_train_batch_size": 32,  # 32 pairs per update: about 6,700 / 32 = 210 updates per epoch
    "num_train_epochs": 5,  # 5 * 210 = about 1,050 updates
    "learning_rate": 3e-5,
    "warmup_steps": 50,  # 5% of the 1,050 updates
    # A small domain set pulls the weights far from the general model: a strong L2-SP keeps them near it.
    # A starting point: raise it if eval_general_bleu falls, lower it if eval_in_domain_bleu stalls.
    "l2sp_lambda": 1.0,
    "l2sp_schedule": "constant",
    "weight_decay": 0.0,  # L2-SP replaces the pull towards zero
    "eval_strategy": "steps",
    "eval_steps": 100,  # 100 updates * 32 = every 3,200 pairs, 10 evaluations in the run
    "save_steps": 100,
    "save_total_limit": 2,
    "logging_steps": 10,
    "per_device_eval_batch_size": 64,
    "generation_num_beams": 4,
    "generation_max_length": 64,
    "output_dir": "runs/opus-mt-de-en-med",
}


def main(argv=None):
    return run(CONFIG, argv, description=__doc__)


if __name__ == "__main__":
    main()
