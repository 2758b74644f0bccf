"""The recipe runner: ``RecipeArguments`` and ``run``, which every recipe in ``hf_l2mt.apps.recipes`` calls.

A recipe is a dict of settings (flag name → value). ``run(CONFIG, argv)`` parses ``RecipeArguments``
and ``L2MTTrainingArguments`` with one ``HfArgumentParser``, where later sources win:

1. the dataclass defaults;
2. ``RUNNER_DEFAULTS``, which every recipe needs;
3. the recipe's ``CONFIG``;
4. a YAML or JSON file given with ``--config FILE``;
5. the command line.

Then it loads the checkpoint, reads, cleans and tokenises the pairs (``hf_l2mt.data``), fine-tunes
with ``L2MTTrainer``, and writes into ``output_dir`` the model, the tokenizer, ``scores.json``
(sacreBLEU scores with their signatures for every evaluation set) and the model card
(``README.md``); with ``--push_to_hub`` it publishes that folder once, at the end. When an evaluation
set is general domain (``general_eval_sets``, default ``general``), the final evaluation also
translates every set with the starting model and writes the forgetting report
(``forgetting_report.json`` and ``.png``, docs/forgetting_report.md) and its section of the card.

A checkpoint or dataset on the Hub that cannot be downloaded now (``HF_HUB_OFFLINE=1``, or the Hub
cannot be reached) and is not cached stops the run within seconds, with one line on standard error
that names its flag and exit status 2; a cached copy is read without a network.
"""

import functools
import logging
import os
import shlex
import sys

import torch
from accelerate import PartialState
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ...core.trainer import L2MTTrainer, seed_as_trainer
from ...core.training_args import L2MTTrainingArguments
from ...data import (
    DING_PATH,
    clean_pairs,
    load_pairs,
    make_data_collator,
    preprocess_pairs,
    split_pairs,
)
from ...data.errors import SourceUnavailableError
from ...data.language_codes import prepare_translation_pair
from ...data.preprocess import resolve_source_prefix
from ...evaluation.metrics import make_compute_metrics, score_translations
from ...evaluation.report_names import SCORE_NAMES
from ...evaluation.translate import report_scores, translate
from ...hub_probe import ModelUnavailableError, load_model_offline, offline_mode
from ...tokenizer_warnings import without_sacremoses_recommendation
from ..terminal.console import use_tidy_progress
from .base_comparison import forgetting_against_base
from .interpolation import check_interpolation, interpolate_run
from ..report.files import log_report, write_report_files
from ..weights.average import UNAVERAGED_DIR, last_complete_checkpoints, load_average
from ..publish.hub import push_to_hub
from ..publish.model_card import build_model_card, write_model_card
from .arguments import RecipeArguments, recipe_layers
from ..terminal.settings import parse_settings

logger = logging.getLogger("hf_l2mt")

SCORES_FILE = "scores.json"

def is_ding(source: str) -> bool:
    """Whether ``load_pairs`` reads ``source`` as the Ding dictionary."""
    return source == "ding" or source.startswith("ding:") or os.path.realpath(source) == os.path.realpath(DING_PATH)


def loader_options(source: str, split: str) -> dict:
    """The keyword arguments ``load_pairs`` needs for this kind of source."""
    return {"split": split} if source.startswith("hub:") or os.path.isdir(source) else {}


def load_recipe_pairs(recipe: RecipeArguments, seed: int):
    """``(train_pairs, {name: eval_pairs})``: training pairs cleaned, held-out sources removed.

    Evaluation sets are not cleaned: a test set is scored as it was published.
    """
    options = loader_options(recipe.train_source, recipe.train_split)
    if recipe.domain is not None and is_ding(recipe.train_source):
        options["domain"] = recipe.domain
    elif recipe.domain is not None:
        logger.warning(
            "domain=%r ignored: only Ding sources have subject labels, and train_source is %r",
            recipe.domain, recipe.train_source,
        )
    pairs = load_flag_source("train_source", recipe.train_source, recipe, **options)
    if recipe.max_train_samples is not None:
        pairs = pairs.select(range(min(recipe.max_train_samples, len(pairs))))
    pairs, _ = clean_pairs(
        pairs, max_length=recipe.clean_max_length, max_length_ratio=recipe.clean_max_length_ratio,
        name=recipe.train_source,
    )
    evaluation = {}
    for name, source in recipe.eval_sets().items():
        if source is None:
            splits = split_pairs(pairs, {name: recipe.eval_holdout}, seed=seed)
            pairs, evaluation[name] = splits["train"], splits[name]
        else:
            options = loader_options(source, recipe.eval_split)
            evaluation[name] = load_flag_source("eval_sources", source, recipe, **options)
        if recipe.max_eval_samples is not None:
            evaluation[name] = evaluation[name].select(range(min(recipe.max_eval_samples, len(evaluation[name]))))
    return pairs, evaluation


def load_flag_source(flag: str, source: str, recipe: RecipeArguments, **options):
    """``load_pairs(source, ...)``; a source that cannot be read now (not cached, Hub offline) names ``flag``."""
    try:
        return load_pairs(source, recipe.src_lang, recipe.tgt_lang, **options)
    except SourceUnavailableError as err:
        raise SourceUnavailableError(f"{flag}: {err}") from None


def exit_unavailable(error: Exception):
    """The error in one line on standard error and exit status 2, as for a bad flag: no traceback."""
    sys.stderr.write(f"{os.path.basename(sys.argv[0])}: error: {error}\n")
    raise SystemExit(2)


def card_dataset_name(source: str) -> str:
    """How the model card names a training source: the Hub id, or a local path it shortens to its name."""
    if source.startswith("hub:"):
        return source[len("hub:"):].split(":")[0]
    if source == "ding":
        return DING_PATH
    return source.removeprefix("ding:")


def logged_scores(log_history: list[dict], set_sizes: dict[str, int]) -> dict[str, dict]:
    """The latest evaluation scores of each set in the Trainer's log, as ``build_model_card`` takes them."""
    scores = {}
    for entry in reversed(log_history):
        for name, size in set_sizes.items():
            keys = [f"eval_{name}_{metric}" for metric in SCORE_NAMES]
            if name not in scores and all(key in entry for key in keys):
                scores[name] = {metric: entry[key] for metric, key in zip(SCORE_NAMES, keys)}
                scores[name]["num_sentences"] = size
    return {name: scores[name] for name in set_sizes if name in scores}


class ModelCardCallback(TrainerCallback):
    """Writes the model card into every checkpoint, with the scores of the latest evaluation.

    A checkpoint is a model a user may keep; like the final model, it says what it is.
    """

    def __init__(self, make_card, eval_set_sizes: dict[str, int]):
        self.make_card = make_card
        self.eval_set_sizes = eval_set_sizes

    def on_save(self, args, state, control, **kwargs):
        checkpoint = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if state.is_world_process_zero and os.path.isdir(checkpoint):
            write_model_card(checkpoint, self.make_card(logged_scores(state.log_history, self.eval_set_sizes)))


def check_averaging(recipe: RecipeArguments, args: L2MTTrainingArguments) -> None:
    """Refuse, before training, an ``average_last_checkpoints`` the run's checkpoints cannot give."""
    count = recipe.average_last_checkpoints
    if not count:
        return
    if args.adapter == "lora":
        raise ValueError(
            f"average_last_checkpoints: got {count} with adapter='lora'; checkpoints of a LoRA run hold adapters, "
            "not model weights; accepted: 0 with adapter='lora'"
        )
    if args.save_strategy == "no":
        raise ValueError(
            f"average_last_checkpoints: got {count}, but save_strategy is 'no', so the run writes no checkpoint; "
            "accepted: save_strategy 'steps' or 'epoch', or average_last_checkpoints 0"
        )
    if args.save_total_limit is not None and args.save_total_limit < count:
        raise ValueError(
            f"average_last_checkpoints: got {count}, but save_total_limit={args.save_total_limit} keeps fewer "
            f"checkpoints; accepted: save_total_limit >= {count}, or average_last_checkpoints <= "
            f"{args.save_total_limit}"
        )


def average_final_model(trainer: L2MTTrainer, count: int) -> list[str]:
    """Keep the last update's model in ``output_dir/last``, then set the model to the mean of the last
    ``count`` complete checkpoints (Vaswani et al. 2017); returns their folder names, oldest first."""
    output_dir = trainer.args.output_dir
    trainer.save_model(os.path.join(output_dir, UNAVERAGED_DIR))
    checkpoints = last_complete_checkpoints(output_dir, count)
    load_average(trainer.model, checkpoints)
    return [os.path.basename(path) for path in checkpoints]


def averaging_section(checkpoints: list[str]) -> str:
    """The model card's account of checkpoint averaging: which checkpoints, and where the unaveraged model is."""
    return (
        f"\n## Checkpoint averaging\n\nThe weights of this model are the mean of the weights of the last "
        f"{len(checkpoints)} checkpoints of the run ({', '.join(checkpoints)}; `average_last_checkpoints="
        f"{len(checkpoints)}`); the scores above are the averaged model's. The model of the last update, not "
        f"averaged, is in `{UNAVERAGED_DIR}/`.\n"
    )


def parse_arguments(
    config: dict, argv: list[str] | None = None, description: str | None = None
) -> tuple[RecipeArguments, L2MTTrainingArguments]:
    """The settings of a run: ``RUNNER_DEFAULTS``, then ``config``, then ``--config FILE``, then ``argv``."""
    return parse_settings((RecipeArguments, L2MTTrainingArguments), recipe_layers(config), argv, description=description)


def run(config: dict, argv: list[str] | None = None, description: str | None = None) -> dict[str, dict]:
    """Fine-tune, score, save and publish as ``config`` says, with ``argv`` (default ``sys.argv[1:]``) winning.

    Returns the sacreBLEU scores of each evaluation set (``score_translations`` output) on the main
    process. Under several processes the others end their process here once the final model is saved
    (``end_other_process``), and the main one destroys the process group before it returns, as the end of
    a launched script should (``Trainer.end``): call it once per process, as a launched script's last step.
    """
    recipe, args = parse_arguments(config, argv, description)
    try:
        scores = _run(recipe, args)
    except BaseException:
        end_process_group()
        raise
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        end_other_process()
    end_process_group()
    return scores


def end_process_group() -> None:
    """Destroy the process group, if there is one, as torch, accelerate and transformers (``Trainer.end``) ask
    at the end of a script."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        PartialState().destroy_process_group()


def end_other_process() -> None:
    """End a process other than the main one, its output flushed, without Python's shutdown.

    torch 2.13 keeps a gloo process group that DDP used alive to the end of the process, whatever
    ``destroy_process_group`` does (its reducer holds it from C++), so its worker threads outlive the
    script. A worker that drops the last collective's tensors after the interpreter began shutting down
    needs the GIL, which is gone, and the process aborts ("terminate called without an active
    exception", SIGABRT; pytorch/pytorch PR 179291 describes it). The other processes leave ``run`` right
    after the final save's collective, so on a loaded machine they can lose that race; the main process
    translates and scores first, long after it. Nothing is left for these processes to do: the main one
    writes every file, and they wrote what is theirs (RNG states, the collective saves) inside the run.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _run(recipe: RecipeArguments, args: L2MTTrainingArguments) -> dict[str, dict]:
    try:
        check_averaging(recipe, args)
        check_interpolation(recipe.interpolate_after, args.adapter, recipe.model_name_or_path)
    except ValueError as err:
        exit_unavailable(err)
    publish = args.push_to_hub
    # Trainer.push_to_hub uploads training_args.bin (a pickle of args) and checkpoints (with the anchor); the
    # run publishes the final folder once, through apps.publish.hub.push_to_hub, which leaves them out. The token
    # leaves args too, so that no training_args.bin written to output_dir holds it.
    args.push_to_hub = False
    hub_token, args.hub_token = args.hub_token, None

    try:
        from_cache = load_model_offline(recipe.model_name_or_path)
    except ModelUnavailableError as err:
        exit_unavailable(err)
    # Seeded before loading, as transformers' example scripts do: a weight the checkpoint lacks is then made from
    # --seed, the same in every run.
    seed_as_trainer(args)
    with without_sacremoses_recommendation(), offline_mode(from_cache):
        tokenizer = AutoTokenizer.from_pretrained(recipe.model_name_or_path, trust_remote_code=recipe.trust_remote_code)
        model = AutoModelForSeq2SeqLM.from_pretrained(
            recipe.model_name_or_path, trust_remote_code=recipe.trust_remote_code
        )
    # Before the Trainer exists: evaluation during training, the final translations and the saved model all
    # generate with the model's generation config (docs/multilingual.md).
    prepare_translation_pair(model, tokenizer, recipe.src_lang, recipe.tgt_lang)
    prefix = resolve_source_prefix(recipe.src_lang, recipe.tgt_lang, recipe.source_prefix, model.config)
    tokenize = functools.partial(
        preprocess_pairs, tokenizer=tokenizer, src_lang=recipe.src_lang, tgt_lang=recipe.tgt_lang,
        max_source_length=recipe.max_source_length, max_target_length=recipe.max_target_length,
        source_prefix=prefix, model_config=model.config,
    )
    with args.main_process_first(desc="reading and tokenizing pairs"):
        try:
            train_pairs, eval_pairs = load_recipe_pairs(recipe, args.seed)
        except SourceUnavailableError as err:
            exit_unavailable(err)
        train = tokenize(train_pairs)
        evaluation = {name: tokenize(pairs) for name, pairs in eval_pairs.items()}

    command = shlex.join(sys.argv)  # build_model_card redacts tokens and shortens local paths

    def make_card(scores, forgetting=None):
        return build_model_card(
            base_model=recipe.model_name_or_path, src_lang=recipe.src_lang, tgt_lang=recipe.tgt_lang,
            training_args=args, scores=scores, datasets=[card_dataset_name(recipe.train_source)], command=command,
            forgetting=forgetting,
        )

    trainer = L2MTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        # Multiples of 8 let fp16/bf16 matrix products use tensor cores. mixed_precision is set from --fp16,
        # --bf16 or the accelerate config (transformers 5 reads ACCELERATE_MIXED_PRECISION).
        data_collator=make_data_collator(
            tokenizer, model, pad_to_multiple_of=None if args.mixed_precision == "no" else 8
        ),
        compute_metrics=make_compute_metrics(tokenizer) if args.predict_with_generate else None,
        callbacks=[ModelCardCallback(make_card, {name: len(pairs) for name, pairs in eval_pairs.items()})],
    )
    use_tidy_progress(trainer, "training")
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    averaged_from = []
    if recipe.average_last_checkpoints:
        averaged_from = average_final_model(trainer, recipe.average_last_checkpoints)
    trainer.save_model()
    if not trainer.is_world_process_zero():
        return {}

    generation = {
        "batch_size": args.per_device_eval_batch_size,
        "num_beams": args.generation_num_beams or trainer.model.generation_config.num_beams or 1,
        "max_new_tokens": args.generation_max_length or recipe.max_target_length,
        "source_prefix": prefix,
    }
    # A LoRA run translates with the adapters merged in (saved already): the same translations, no PEFT wrapper
    # between translate() and the model's generation settings.
    model = trainer.model.merge_and_unload() if args.adapter == "lora" else trainer.model
    translations = {name: translate(pairs["source"], model, tokenizer, **generation)
                    for name, pairs in eval_pairs.items()}
    scores = {name: score_translations(translations[name], pairs["target"]) for name, pairs in eval_pairs.items()}
    scores_path = os.path.join(args.output_dir, SCORES_FILE)
    logger.info("sacreBLEU scores, with signatures in %s:\n%s", scores_path, report_scores(scores, scores_path))
    forgetting = None
    general = [name for name in eval_pairs if name in recipe.general_eval_sets]
    if general:
        forgetting = forgetting_against_base(
            recipe, from_cache, eval_pairs, translations, general, generation, command, trainer.model.device
        )
        logger.info("forgetting report:\n%s", log_report(forgetting, write_report_files(forgetting, args.output_dir)))
    if recipe.interpolate_after:
        logger.info("interpolation between the start and the end of the run:\n%s", interpolate_run(
            recipe, from_cache, args.output_dir, tokenizer, eval_pairs, general, generation, trainer.model.device
        ))
    card = make_card(scores, forgetting)
    if averaged_from:
        card.text += averaging_section(averaged_from)
    write_model_card(args.output_dir, card)
    if publish:
        repo_id = args.hub_model_id or os.path.basename(os.path.normpath(args.output_dir))
        push_to_hub(args.output_dir, repo_id, token=hub_token, private=bool(args.hub_private_repo))
    return scores
