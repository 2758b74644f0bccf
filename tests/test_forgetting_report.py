"""The forgetting report: shares on constructed cases, numbers equal to sacreBLEU's, and hf-l2mt evaluate --base
end to end on tiny models built from configs (each translating with its own tokenizer)."""

import json
import os
import random

import pytest
import sacrebleu
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from conftest import EOS, PAD, tiny_marian
from hf_l2mt.apps.cli import main
from hf_l2mt.evaluation.forgetting import build_report, format_report, gain_kept, recovered_share, verdict
from hf_l2mt.evaluation.significance import format_p_value
from hf_l2mt.evaluation.translate import load_translation_model, translate
from tiny_checkpoints import WORDS, word_tokenizer


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_recovered_share_on_constructed_cases():
    assert recovered_share(base=40, plain=30, run=38)["share"] == pytest.approx(0.8)
    assert recovered_share(base=40, plain=30, run=30)["share"] == 0.0
    assert recovered_share(base=40, plain=30, run=42)["share"] == pytest.approx(1.2)
    # TER is lower-is-better; the ratio reads the same: plain lost 10 points, the run 2 of them.
    assert recovered_share(base=40, plain=50, run=42)["share"] == pytest.approx(0.8)
    undefined = recovered_share(base=40, plain=40, run=38)
    assert undefined == {"share": None, "why": "undefined: the plain run scores as the base (nothing forgotten)"}


def test_gain_kept_on_constructed_cases():
    assert gain_kept(base=20, plain=40, run=35)["share"] == pytest.approx(0.75)
    assert gain_kept(base=20, plain=20, run=35)["share"] is None


def sentences(seed, n=12):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))) for _ in range(n)]


def constructed_translations():
    """References, and a base, run and plain that copy a reference with chosen probabilities per set."""
    rng = random.Random(0)
    references = {"in_domain": sentences(1, 40), "general": sentences(2, 40)}

    def copies(name, p):
        return [ref if rng.random() < p else " ".join(rng.sample(WORDS, 4)) for ref in references[name]]

    translations = {
        "base": {"in_domain": copies("in_domain", 0.1), "general": copies("general", 0.8)},
        "run": {"in_domain": copies("in_domain", 0.6), "general": copies("general", 0.6)},
        "plain": {"in_domain": copies("in_domain", 0.8), "general": copies("general", 0.2)},
    }
    return references, translations


def test_report_numbers_equal_sacrebleu_and_shares_follow_from_them():
    references, translations = constructed_translations()
    report = build_report(references, translations, ["general"], seed=9, resamples=100, command="cmd")

    for name, refs in references.items():
        for model, by_set in translations.items():
            scores = report["sets"][name]["scores"][model]
            assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(by_set[name], [refs]).score)
            assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(by_set[name], [refs]).score)
            assert scores["chrf_pp"] == pytest.approx(sacrebleu.corpus_chrf(by_set[name], [refs], word_order=2).score)
            assert scores["ter"] == pytest.approx(sacrebleu.corpus_ter(by_set[name], [refs]).score)
    general = report["sets"]["general"]["scores"]
    base, plain, run = (general[m]["bleu"] for m in ("base", "plain", "run"))
    assert plain < run < base, "the constructed case must have forgetting to recover"
    assert report["shares"]["plain"]["general"]["bleu"]["share"] == pytest.approx((run - plain) / (base - plain))
    in_domain = report["sets"]["in_domain"]["scores"]
    base, plain, run = (in_domain[m]["chrf"] for m in ("base", "plain", "run"))
    kept = report["shares"]["plain"]["in_domain"]["chrf"]
    assert kept == {"kind": "in_domain_gain_kept", "share": pytest.approx((run - base) / (plain - base)),
                    "why": "(run - base) / (plain - base)"}
    assert report["bootstrap"]["seed"] == 9 and report["bootstrap"]["resamples"] == 100
    assert report["sets"]["general"]["bootstrap_signatures"]["bleu"].startswith("nrefs:1|bs:100|seed:9|")

    table = format_report(report)
    change = report["sets"]["general"]["changes"]["plain"]["bleu"]
    assert f"{change['change']:+.2f} [{change['ci_low']:+.2f}, {change['ci_high']:+.2f}]*" in table
    assert "general (general domain, 40 sentences)" in table and "recovered vs plain" in table


def test_undefined_share_is_shown_as_such():
    references, translations = constructed_translations()
    translations["plain"] = translations["base"]
    report = build_report(references, translations, ["general"], seed=9, resamples=50)
    assert report["shares"]["plain"]["general"]["bleu"]["share"] is None
    assert "n/a" in format_report(report)


@pytest.mark.parametrize("change, message", [
    (lambda t, g: t["plain"].pop("general"), "'plain' has no translations of the set(s) 'general' (it was scored on: "
                                              "in_domain); every model must translate every test set"),
    (lambda t, g: g.append("news"), "general sets 'news' are not among the test sets (in_domain, general)"),
    (lambda t, g: t["run"]["general"].pop(), "'run' has 39 translations of set 'general', which has 40 references"),
    (lambda t, g: t.pop("base"), "no translations by 'base'; given: run, plain"),
])
def test_bad_input_is_named(change, message):
    references, translations = constructed_translations()
    general = ["general"]
    change(translations, general)
    with pytest.raises(ValueError) as error:
        build_report(references, translations, general, seed=9, resamples=50)
    assert message in str(error.value)


def shuffled_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose word ids differ from tiny_checkpoints.word_tokenizer's."""
    words = list(reversed(WORDS))
    vocab = {"</s>": EOS, "<pad>": PAD, "<unk>": 2, **{word: 3 + i for i, word in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", EOS)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="module")
def three_models(tmp_path_factory):
    """A base with its own tokenizer, and two fine-tunes of it (different weights, the usual tokenizer)."""
    paths = {}
    for name, seed, tokenizer in (("base", 3, shuffled_tokenizer()), ("run", 4, word_tokenizer(PAD, EOS)),
                                  ("plain", 5, word_tokenizer(PAD, EOS))):
        path = tmp_path_factory.mktemp(name)
        tiny_marian(seed=seed).save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths[name] = str(path)
    return paths


def write_set(folder, name, n, seed):
    sources, references = sentences(seed, n), sentences(seed + 100, n)
    (folder / f"{name}.en").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (folder / f"{name}.de").write_text("\n".join(references) + "\n", encoding="utf-8")
    return f"{name}={folder / f'{name}.en'},{folder / f'{name}.de'}", sources, references


def test_evaluate_with_base_writes_the_report_and_reuses_cached_translations(three_models, tmp_path, monkeypatch,
                                                                              capsys):
    monkeypatch.setenv("HF_L2MT_CACHE", str(tmp_path / "cache"))
    in_domain, in_sources, in_refs = write_set(tmp_path, "in_domain", 10, 1)
    general, general_sources, general_refs = write_set(tmp_path, "general", 8, 2)
    argv = ["evaluate", three_models["run"], "--base", three_models["base"], "--test", in_domain, "--test", general,
            "--compare", f"plain={three_models['plain']}", "--num_beams", "1", "--max_new_tokens", "8",
            "--device", "cpu", "--bootstrap_resamples", "100", "--bootstrap_seed", "3"]
    main(argv)
    first = capsys.readouterr()
    report_path = f"{three_models['run']}/forgetting_report.json"
    with open(report_path, encoding="utf-8") as handle:
        report = json.load(handle)

    for model in ("base", "run"):
        loaded = load_translation_model(three_models[model])  # each model with its own tokenizer
        hypotheses = translate(general_sources, *loaded, num_beams=1, max_new_tokens=8, progress=False)
        expected = sacrebleu.corpus_chrf(hypotheses, [general_refs]).score
        assert report["sets"]["general"]["scores"][model]["chrf"] == pytest.approx(expected)
    assert report["general_sets"] == ["general"] and report["compared"] == ["plain"]
    assert report["command"].startswith(f"hf-l2mt evaluate {three_models['run']} --base {three_models['base']}")
    assert set(report["shares"]["plain"]) == {"in_domain", "general"}
    with open(f"{three_models['run']}/forgetting_report.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "in_domain (in-domain, 10 sentences)" in first.out and "read from the cache" not in first.err

    main(argv)
    again = capsys.readouterr()
    assert "base: translations of in_domain, general read from the cache" in again.err
    assert again.out == first.out


@pytest.mark.parametrize("extra, message", [
    (["--compare", "plain=x"], "--compare plain=x: needs --base BASE_MODEL"),
    (["--base", "BASE", "--general_sets", "news"], "--general_sets: news is not a --test set; the test sets are t"),
    (["--base", "BASE", "--bootstrap_seed", "0"], "--bootstrap_seed: got 0; accepted: an integer >= 1"),
    (["--base", "BASE", "--compare", "base=x"], "--compare: names base; accepted: distinct names other than"),
])
def test_evaluate_flags_refuse_bad_values(extra, message, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "RUN", "--test", "t=a.en,a.de", *extra])
    assert message in capsys.readouterr().err


def test_test_files_of_different_lengths_name_both_counts(three_models, tmp_path, capsys):
    (tmp_path / "a.en").write_text("the dog\na cat\nsun\n", encoding="utf-8")
    (tmp_path / "a.de").write_text("the dog\na cat\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["evaluate", three_models["run"], "--base", three_models["base"],
              "--test", f"general={tmp_path / 'a.en'},{tmp_path / 'a.de'}"])
    assert f"--test general: {tmp_path / 'a.en'} has 3 lines and {tmp_path / 'a.de'} has 2" in capsys.readouterr().err


def test_missing_base_names_the_flag(three_models, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", three_models["run"], "--base", str(tmp_path / "nowhere"), "--test", "t=a.en,a.de"])
    assert f"--base {tmp_path / 'nowhere'}: does not exist" in capsys.readouterr().err


def test_a_run_with_a_general_set_reports_against_its_starting_model(tmp_path, monkeypatch):
    from hf_l2mt.apps.recipes import en_de
    from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

    base_dir = save_checkpoint(tmp_path / "base", "marian")
    train = write_tsv(tmp_path / "train.tsv", sentence_pairs(16, seed=0))
    general = write_tsv(tmp_path / "general.tsv", sentence_pairs(6, seed=1))
    out = tmp_path / "run"
    argv = ["--model_name_or_path", base_dir, "--train_source", train, "--eval_sources", f"general={general}",
            "--eval_holdout", "4", "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--per_device_eval_batch_size", "8", "--eval_steps", "2", "--save_strategy", "no",
            "--generation_num_beams", "1", "--generation_max_length", "10", "--max_source_length", "16",
            "--max_target_length", "16", "--learning_rate", "1e-2", "--use_cpu",
            "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--output_dir", str(out)]
    monkeypatch.setattr("sys.argv", ["recipes/en_de.py", *argv])

    scores = en_de.main(argv)

    report = json.loads((out / "forgetting_report.json").read_text(encoding="utf-8"))
    assert report["general_sets"] == ["general"] and list(report["sets"]) == ["in_domain", "general"]
    for name in ("in_domain", "general"):
        assert report["sets"][name]["scores"]["run"]["bleu"] == pytest.approx(scores[name]["bleu"])
    base, tokenizer = load_translation_model(base_dir)
    general_pairs = sentence_pairs(6, seed=1)
    base_hypotheses = translate([s for s, _ in general_pairs], base, tokenizer, num_beams=1, max_new_tokens=10,
                                progress=False)
    expected = sacrebleu.corpus_chrf(base_hypotheses, [[t for _, t in general_pairs]]).score
    assert report["sets"]["general"]["scores"]["base"]["chrf"] == pytest.approx(expected)
    card = (out / "README.md").read_text(encoding="utf-8")
    change = report["sets"]["general"]["changes"]["run"]["bleu"]
    assert "## What it kept and what it learned" in card
    assert (f"| general (general) | BLEU | {change['baseline']:.2f} | {change['score']:.2f} | "
            f"{change['change']:+.2f} [{change['ci_low']:+.2f}, {change['ci_high']:+.2f}]") in card
    base_name = os.path.basename(base_dir)
    metadata = card.split("\n---\n", 1)[0]
    assert f"value: {round(change['baseline'], 2)}\n      name: BLEU of the base model {base_name}" in metadata
    assert (out / "forgetting_report.png").is_file()


def test_verdict_answers_from_the_reports_own_numbers():
    references, translations = constructed_translations()
    # Half of the general set as plain translates it, half as the base: it forgets, half as much as plain.
    translations["run"]["general"] = translations["plain"]["general"][:20] + translations["base"]["general"][20:]
    report = build_report(references, translations, ["general"], seed=9, resamples=200,
                          models={"plain": "runs/plain"})
    general, in_domain = (report["sets"][name]["changes"]["run"]["exact_match"] for name in ("general", "in_domain"))
    assert general["significant"] and general["change"] < 0 < in_domain["change"], "the case must have forgotten"
    recovered = report["shares"]["plain"]["general"]["exact_match"]["share"]
    kept = report["shares"]["plain"]["in_domain"]["exact_match"]["share"]
    assert verdict(report, "exact_match") == (
        f"Did it forget? Yes: general domain (general): exact match {general['change']:+.2f} "
        f"[{general['ci_low']:+.2f}, {general['ci_high']:+.2f}], significant (p {p_text(general)}); in-domain "
        f"(in_domain): exact match {in_domain['change']:+.2f} [{in_domain['ci_low']:+.2f}, "
        f"{in_domain['ci_high']:+.2f}], significant (p {p_text(in_domain)}); against plain (runs/plain), it recovers {100 * recovered:.0f} % of the loss on "
        f"general and keeps {100 * kept:.0f} % of the gain on in_domain."
    )
    assert report["headline_metric"] == "chrf" and verdict(report).startswith("Did it forget? Yes: general domain "
                                                                               "(general): chrF ")
    assert format_report(report).replace("\n", " ").endswith(verdict(report))

    translations["plain"] = translations["base"]
    unchanged = build_report(references, translations, ["general"], seed=9, resamples=50)
    assert "it has nothing to recover on general (plain lost nothing there) and has nothing to keep on in_domain " \
           "(plain gained nothing there)." in verdict(unchanged)


def p_text(change: dict) -> str:
    shown = format_p_value(change["p_value"], 200)
    return shown if shown.startswith("<") else f"= {shown}"


def test_verdict_without_a_significant_loss_says_so():
    references, translations = constructed_translations()
    report = build_report(references, translations, ["general"], seed=9, resamples=200)
    change = report["sets"]["general"]["changes"]["run"]["chrf"]
    assert change["change"] < 0 and not change["significant"]
    assert verdict(report).startswith("Did it forget? Not significantly: ")
