"""Model card (the Hub's README.md) for a model fine-tuned with hf_l2mt.

The card records what a reader needs to judge and reproduce the model: the base checkpoint, the
language pair, the data, every regularization setting, the sacreBLEU scores with their signatures
and the training command. The scores also go into the ``model-index`` metadata, so the Hub shows
them on the model page. Local paths are shortened to their last component and secrets (``--hub_token``,
``HF_TOKEN=...``, ``hf_...`` strings) are replaced by ``***`` before anything is written.
"""

import os
import re
from enum import Enum

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ...atomic_write import atomic_path
from ...core.training_args import L2MTTrainingArguments, added_fields
from ...evaluation.report_names import SCORE_NAMES
from ...evaluation.significance import format_p_value

TRAINING_FIELDS = (
    "learning_rate", "lr_scheduler_type", "warmup_steps", "max_steps", "num_train_epochs",
    "per_device_train_batch_size", "gradient_accumulation_steps", "optim", "seed",
)
METRIC_TITLES = {"bleu": "BLEU", "chrf": "chrF", "chrf_pp": "chrF++", "ter": "TER", "exact_match": "Exact match"}

# A Hub repo id: "name" or "namespace/name" (https://huggingface.co/docs/hub/repositories).
_HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SECRET_FLAG = re.compile(
    r"(--(?:[A-Za-z]+[_-])*(?:token|api[_-]?key|password|secret))(=|\s+)(\"[^\"]*\"|'[^']*'|\S+)", re.IGNORECASE
)
_SECRET_ENV = re.compile(r"\b([A-Z][A-Z0-9_]*(?:TOKEN|API_KEY|PASSWORD|SECRET))=(\"[^\"]*\"|'[^']*'|\S+)")
_HUB_TOKEN_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{16,}\b")  # User access tokens start with "hf_".
_ABSOLUTE_PATH = re.compile(r"(?<![\w/:.~-])~?/[^\s'\"]+")


def regularization_fields(training_args: L2MTTrainingArguments) -> list[str]:
    """The card's regularization block: every field ``type(training_args)`` adds over ``Seq2SeqTrainingArguments``
    (``weight_decay`` is a transformers field, but its mode, schedule and overrides are ours, so it leads)."""
    return ["weight_decay", *(f.name for f in added_fields(type(training_args)))]


def redact_secrets(text: str) -> str:
    """Replace token values (``--hub_token X``, ``HF_TOKEN=X``, bare ``hf_...`` strings) by ``***``."""
    text = _SECRET_FLAG.sub(r"\1\2***", text)
    text = _SECRET_ENV.sub(r"\1=***", text)
    return _HUB_TOKEN_VALUE.sub("***", text)


def shorten_local_paths(text: str) -> str:
    """Replace absolute paths by their last component, so a card does not expose the local file system."""

    def last_component(match: re.Match) -> str:
        return os.path.basename(os.path.normpath(match.group(0))) or match.group(0)

    return _ABSOLUTE_PATH.sub(last_component, text)


def hub_id_or_local_name(name: str) -> tuple[str | None, str]:
    """``(repo_id, shown_name)``: a Hub repo id is kept; a local path gives ``(None, its basename)``."""
    if os.path.isdir(name) or os.path.isfile(name) or not _HUB_REPO_ID.match(name):
        return None, os.path.basename(os.path.normpath(os.path.expanduser(name)))
    return name, name


def build_model_card(
    *,
    base_model: str,
    src_lang: str,
    tgt_lang: str,
    training_args,
    scores: dict,
    datasets=(),
    command: str | None = None,
    model_name: str | None = None,
    license: str | None = None,
    forgetting: dict | None = None,
) -> ModelCard:
    """Card for a model fine-tuned from ``base_model`` with ``training_args`` (an ``L2MTTrainingArguments``).

    ``scores`` maps each evaluation set to the output of ``hf_l2mt.evaluation.metrics.score_translations``;
    ``command`` is the command line that trained the model (secrets and local paths are removed).
    ``forgetting`` (``hf_l2mt.evaluation.forgetting.build_report`` output) adds the section "What it kept and
    what it learned" and the base model's scores to ``model-index``.
    """
    if not isinstance(training_args, L2MTTrainingArguments):
        raise ValueError(
            f"build_model_card: training_args is a {type(training_args).__name__}; accepted: L2MTTrainingArguments"
        )
    for flag, lang in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
        if not isinstance(lang, str) or not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]+)*", lang):
            raise ValueError(f"build_model_card: {flag}={lang!r}; accepted: a language code such as 'en' or 'pt-BR'")
    _check_scores(scores)
    model_name = model_name or os.path.basename(os.path.normpath(training_args.output_dir))
    base_id, base_shown = hub_id_or_local_name(base_model)
    sources = [hub_id_or_local_name(name) for name in datasets]
    settings = {
        "regularization": {name: _plain(getattr(training_args, name)) for name in regularization_fields(training_args)},
        "training": {name: _plain(getattr(training_args, name)) for name in TRAINING_FIELDS},
    }
    settings["training"]["total_train_batch_size"] = (
        training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * training_args.world_size
    )
    lora = training_args.adapter == "lora"
    data = ModelCardData(
        model_name=model_name,
        base_model=base_id,
        language=[src_lang, tgt_lang],
        license=license,
        datasets=[repo_id for repo_id, _ in sources if repo_id] or None,
        tags=["translation", "hf_l2mt", *(["lora"] if lora else [])],
        # An adapter loads through PEFT (the Hub shows its loading snippet for library_name "peft").
        library_name="peft" if lora else "transformers",
        pipeline_tag="translation",
        metrics=[metric for metric in SCORE_NAMES if metric != "exact_match"] if scores else None,
        eval_results=(_eval_results(scores) + _base_eval_results(forgetting, base_shown)) or None,
        hf_l2mt=settings,
    )
    body = "\n\n".join([
        _overview(model_name, src_lang, tgt_lang, base_id, base_shown, sources),
        *([_adapter_section(training_args, base_shown)] if lora else []),
        _training_section(training_args, settings, command),
        _evaluation_section(scores),
        *([_forgetting_section(forgetting)] if forgetting else []),
        _limitations_section(src_lang, tgt_lang),
    ])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def write_model_card(output_dir: str, card: ModelCard) -> str:
    """Write ``card`` as ``output_dir/README.md`` (temporary file, then rename) and return its path."""
    if not os.path.isdir(output_dir):
        raise ValueError(f"write_model_card: {output_dir!r} is not a directory; save the model there first")
    path = os.path.join(output_dir, "README.md")
    with atomic_path(path) as tmp:
        card.save(tmp)
    return path


def _check_scores(scores: dict) -> None:
    if not isinstance(scores, dict):
        raise ValueError(f"build_model_card: scores is a {type(scores).__name__}; expected a dict set -> scores")
    for name, result in scores.items():
        result = result if isinstance(result, dict) else {}
        missing = [key for key in SCORE_NAMES if not isinstance(result.get(key), (int, float))]
        if missing:
            raise ValueError(
                f"build_model_card: scores[{name!r}] has no number for {', '.join(missing)}; expected the output "
                "of hf_l2mt.evaluation.metrics.score_translations"
            )


def _plain(value):
    """A YAML-friendly copy of a training-argument value (enums become their string value); an absolute path
    (``l2sp_fisher_path``) keeps its last component only, so the card does not expose the local file system."""
    if isinstance(value, str) and os.path.isabs(value):
        return os.path.basename(os.path.normpath(value))
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _eval_results(scores: dict) -> list[EvalResult]:
    return [
        EvalResult(
            task_type="translation", task_name="Translation", dataset_type=name, dataset_name=name,
            metric_type=metric, metric_name=METRIC_TITLES[metric], metric_value=round(float(result[metric]), 2),
            metric_config=result.get("signatures", {}).get(metric),
        )
        for name, result in scores.items()
        for metric in SCORE_NAMES
    ]


def _base_eval_results(forgetting: dict | None, base_shown: str) -> list[EvalResult]:
    """The base model's scores on the same sets; huggingface_hub files them under the same dataset as this model's,
    so the metric's name says whose they are."""
    if not forgetting:
        return []
    return [
        EvalResult(
            task_type="translation", task_name="Translation", dataset_type=name, dataset_name=name,
            metric_type=metric, metric_name=f"{METRIC_TITLES[metric]} of the base model {base_shown}",
            metric_value=round(float(entry["scores"]["base"][metric]), 2),
            metric_config=entry["scores"]["base"].get("signatures", {}).get(metric),
        )
        for name, entry in forgetting["sets"].items()
        for metric in SCORE_NAMES
    ]


def _forgetting_section(report: dict) -> str:
    """The base's score, this model's, and the change with its 95 % interval and p-value, for every set."""
    rows = []
    for name, entry in report["sets"].items():
        domain = "general" if entry["domain"] == "general" else "in-domain"
        for metric in ("bleu", "chrf", "chrf_pp", "ter", "exact_match"):
            change = entry["changes"]["run"][metric]
            mark = " *" if change["significant"] else ""
            rows.append(
                f"| {name} ({domain}) | {METRIC_TITLES[metric]} | {change['baseline']:.2f} | {change['score']:.2f} | "
                f"{change['change']:+.2f} [{change['ci_low']:+.2f}, {change['ci_high']:+.2f}]{mark} | "
                f"{format_p_value(change['p_value'], report['bootstrap']['resamples'])} |"
            )
    shares = [
        f"- Against `{other}` on {name}: {_share_sentence(metric_shares['bleu'])} (BLEU)."
        for other, by_set in report["shares"].items()
        for name, metric_shares in by_set.items()
    ]
    bootstrap = report["bootstrap"]
    return (
        "## What it kept and what it learned\n\n"
        "Scores of the base model and of this model on the same sets; the change comes with its 95 % confidence "
        f"interval and p-value from paired bootstrap resampling (sacreBLEU's resamples, {bootstrap['resamples']} of "
        f"them, seed {bootstrap['seed']}); `*` marks an interval that leaves 0 out, which is p <= "
        f"{bootstrap['significance_level']:g}. A drop on a general set is "
        "forgetting; TER is lower-is-better.\n\n"
        "| Set | Score | Base | This model | Change [95 % CI] | p |\n|---|---|---:|---:|---|---:|\n"
        + "\n".join(rows)
        + ("\n\n" + "\n".join(shares) if shares else "")
        + _term_use_table(report)
        + _placeholder_line(report)
    )


def _term_use_table(report: dict) -> str:
    """Glossary term use of the base and of this model per set: the rate with hits / sentences with a term."""
    if not report.get("glossary"):
        return ""
    rows = []
    for name, entry in report["sets"].items():
        base, run = entry["glossary"]["base"], entry["glossary"]["run"]
        if base["rate"] is None:
            rows.append(f"| {name} | {base['why']} | |")
            continue
        rows.append(f"| {name} | {_count_cell(base, 'hits', 'sentences_with_term', 'rate')} | "
                    f"{_count_cell(run, 'hits', 'sentences_with_term', 'rate')} |")
    return (
        f"\n\nGlossary term use ({report['glossary']['terms']} terms; case-insensitive, whole words): the share of "
        "sentences with a glossary term in the source whose translation uses the required target term.\n\n"
        "| Set | Base | This model |\n|---|---:|---:|\n" + "\n".join(rows)
    )


def _placeholder_line(report: dict) -> str:
    """One line: the share of sentences whose translation keeps exactly the source's placeholders, per set."""
    parts = [
        f"{name}: base {_count_cell(entry['placeholders']['base'], 'correct', 'sentences_with_placeholder', 'accuracy')}"
        f", this model {_count_cell(entry['placeholders']['run'], 'correct', 'sentences_with_placeholder', 'accuracy')}"
        for name, entry in report["sets"].items()
        if "placeholders" in entry
    ]
    return "\n\nPlaceholders kept exactly (%s, {0}, $1, ...): " + "; ".join(parts) + "." if parts else ""


def _count_cell(result: dict, count: str, total: str, share: str) -> str:
    return f"{100 * result[share]:.0f} % ({result[count]}/{result[total]})"


def _share_sentence(share: dict) -> str:
    what = "of the forgetting recovered" if share["kind"] == "forgetting_recovered" else "of the in-domain gain kept"
    if share["share"] is None:
        return f"share {what} {share['why']}"
    return f"{100 * share['share']:.0f} % {what}"


def _overview(model_name, src_lang, tgt_lang, base_id, base_shown, sources) -> str:
    if base_id:
        base = f"[`{base_id}`](https://huggingface.co/{base_id})"
    else:
        base = f"the local checkpoint `{base_shown}` (not a Hub repository, so it is not linked)"
    shown = [f"[`{repo_id}`](https://huggingface.co/datasets/{repo_id})" if repo_id else f"`{name}` (local)"
             for repo_id, name in sources]
    data = f"Training data: {', '.join(shown)}." if shown else "The training data was not recorded."
    return (
        f"# {model_name}\n\n"
        f"`{model_name}` translates from `{src_lang}` to `{tgt_lang}`. It is {base} fine-tuned with hf_l2mt, "
        f"which adds L2 regularization (L2-SP and weight decay) to the Hugging Face Trainer.\n\n{data}"
    )


def _training_section(training_args, settings, command) -> str:
    l2sp = (
        f"This run used L2-SP with l2sp_lambda = {training_args.l2sp_lambda:g} ({training_args.l2sp_mode}, "
        f"{training_args.l2sp_schedule} schedule)."
        if training_args.uses_l2sp else "This run did not use L2-SP (l2sp_lambda = 0, no l2sp_overrides)."
    )
    others = _other_regularizers(training_args, settings["regularization"])
    rows = [f"| `{name}` | {_cell(value)} |" for group in settings.values() for name, value in group.items()]
    if command:
        recorded = f"Command:\n\n```bash\n{shorten_local_paths(redact_secrets(command))}\n```"
    else:
        recorded = "The training command was not recorded."
    return (
        "## Training\n\n"
        "L2-SP adds (λ/2)·‖θ − θ₀‖² to the training objective, pulling the weights toward the pretrained "
        "ones (the anchor θ₀) so that the model adapts to the new data while keeping what it knew "
        f"(Li et al., 2018, \"Explicit inductive bias for transfer learning with convolutional networks\"). {l2sp} "
        f"Weight decay (towards zero) was {training_args.weight_decay:g} ({training_args.weight_decay_mode})."
        f"{others}\n\n"
        "| Setting | Value |\n|---|---|\n" + "\n".join(rows) + f"\n\n{recorded}"
    )


def _adapter_section(training_args, base_shown: str) -> str:
    """What a LoRA run ships: the adapter's PEFT settings and how to load it on its base model."""
    targets = ", ".join(training_args.lora_target_modules) or "the defaults of the base's architecture"
    trained = ", ".join(training_args.lora_modules_to_save) or "nothing else"
    return (
        "## Adapter\n\n"
        f"This is a LoRA adapter (PEFT) for the base model {base_shown}, whose weights were frozen. Each adapted "
        f"matrix W becomes W + (lora_alpha / lora_r)·B·A with lora_r = {training_args.lora_r}, lora_alpha = "
        f"{training_args.lora_alpha:g}, lora_dropout = {training_args.lora_dropout:g}, on {targets}; trained in "
        f"full besides the adapters: {trained}.\n\n"
        "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForSeq2SeqLM\n\n"
        f'base = AutoModelForSeq2SeqLM.from_pretrained("{base_shown}")\n'
        'model = PeftModel.from_pretrained(base, "<this repository>")\n```'
    )


def _other_regularizers(training_args, recorded: dict) -> str:
    """A sentence naming EWC, KL-to-base and L1 when the run used them, with their settings."""
    used = []
    if training_args.l2sp_fisher_path is not None and training_args.uses_l2sp:
        used.append(f"EWC (the L2-SP penalty weighted by the Fisher in `{recorded['l2sp_fisher_path']}`, "
                    f"l2sp_fisher_normalize = {training_args.l2sp_fisher_normalize})")
    if training_args.kl_lambda > 0:
        used.append(f"KL to the base model (kl_lambda = {training_args.kl_lambda:g}, kl_temperature = "
                    f"{training_args.kl_temperature:g}, {training_args.kl_schedule} schedule)")
    if training_args.lora_l2sp_lambda > 0:
        used.append(f"L2-SP on the LoRA updates in the merged weights, (λ/2)·Σ‖s·B·A‖² (lora_l2sp_lambda = "
                    f"{training_args.lora_l2sp_lambda:g})")
    if training_args.l1_lambda > 0:
        used.append(f"L1 (l1_lambda = {training_args.l1_lambda:g}, towards {training_args.l1_target})")
    return f" It also used {'; '.join(used)}." if used else ""


def _cell(value) -> str:
    """A table cell; ``|`` is escaped because GitHub-flavoured tables split on it even inside code spans."""
    if isinstance(value, list):
        value = ", ".join(map(str, value)) if value else "none"
    return "`" + str(value).replace("|", "\\|") + "`"


def _evaluation_section(scores: dict) -> str:
    if not scores:
        return "## Evaluation\n\nNo evaluation scores were recorded for this model."
    rows = [
        f"| {name} | {result['bleu']:.2f} | {result['chrf']:.2f} | {result['ter']:.2f} | "
        f"{result['exact_match']:.2f} | {result.get('num_sentences', '')} |"
        for name, result in scores.items()
    ]
    signatures = [
        f"- {name}, {METRIC_TITLES[metric]}: `{signature}`"
        for name, result in scores.items()
        for metric, signature in result.get("signatures", {}).items()
    ]
    return (
        "## Evaluation\n\n"
        "Corpus-level sacreBLEU scores (higher is better, except TER); exact match is the percentage of "
        "translations identical to their reference.\n\n"
        "| Set | BLEU | chrF | TER | Exact match (%) | Sentences |\n|---|---:|---:|---:|---:|---:|\n"
        + "\n".join(rows)
        + ("\n\nsacreBLEU signatures:\n\n" + "\n".join(signatures) if signatures else "")
    )


def _limitations_section(src_lang, tgt_lang) -> str:
    return (
        "## Limitations\n\n"
        "- The scores hold for the sets above; quality on other domains, registers or language varieties is "
        "unknown and often lower.\n"
        "- Fine-tuning on a narrow domain can lower quality elsewhere. L2-SP reduces this forgetting, it does not "
        "remove it: compare a general-domain set before and after fine-tuning.\n"
        f"- The model translates sentence by sentence from `{src_lang}` to `{tgt_lang}`, without document context; "
        "inputs longer than the tokenizer's maximum length are truncated.\n"
        "- Like any machine-translation model it can produce fluent but wrong translations; have output that "
        "matters reviewed."
    )
