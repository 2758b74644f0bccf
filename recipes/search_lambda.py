"""Search λ for L2-SP: an Optuna study with in-domain and general-domain scores as its two objectives.

    python recipes/search_lambda.py BASE_MODEL_DIR --src_lang en --tgt_lang de --train med.tsv \
        --in_domain_eval med-dev.tsv --general_eval news-dev.tsv --output_dir runs/search --n_trials 20
    hf-l2mt search BASE_MODEL_DIR ...   # the same

The search, its flags and its pruning rule are in hf_l2mt/apps/search/study.py; docs/search.md describes its outputs.
"""

from hf_l2mt.apps.search.study import main

if __name__ == "__main__":
    main()
