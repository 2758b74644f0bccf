"""The numbers demo end to end on --tiny settings: table and JSON, saved model, cache reuse, output protection."""

import json
import logging
import os
import re

import pytest
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_l2mt.apps import demo
from hf_l2mt.apps.demo import evaluation, output, run as demo_run

LAMBDAS = ["0", "3"]


def run(out, cache, *extra):
    flags = ["--tiny", "--output_dir", str(out), "--cache_dir", str(cache), "--l2sp_lambdas", *LAMBDAS]
    return demo.main([*flags, *extra])


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    out, cache = root / "out", root / "cache"
    return out, cache, run(out, cache)


def test_table_has_every_model_and_scores_in_range(first_run, capsys):
    out, _, results = first_run
    assert [row["model"] for row in results["rows"]] == ["base", "lambda=0", "lambda=3"]
    assert [row["l2sp_lambda"] for row in results["rows"]] == [None, 0.0, 3.0]
    for row in results["rows"]:
        for domain in ("cardinals", "years"):
            for score in ("exact_match", "chrf", "bleu"):
                assert 0.0 <= row[f"{domain}_{score}"] <= 100.0
    with open(out / output.RESULTS_FILE, encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["rows"] == results["rows"]
    assert saved["best_balanced"] in {"lambda=0", "lambda=3"}
    assert saved["base_from_cache"] is False
    assert len(saved["examples"]) == 2 * evaluation.EXAMPLES_PER_DOMAIN
    assert set(saved["examples"][0]["outputs"]) == {"base", "lambda=0", "lambda=3"}


def test_forgetting_report_of_the_best_model_against_base_and_lambda_0(first_run):
    out, _, results = first_run
    report = json.loads((out / "forgetting_report.json").read_text(encoding="utf-8"))
    best = results["best_balanced"]
    expected = {"base": "base", "run": best} | ({} if best == "lambda=0" else {"plain": "lambda=0"})
    assert report["models"] == expected
    assert report["general_sets"] == ["cardinals"] and set(report["sets"]) == {"cardinals", "years"}
    held_out = [example["source"] for example in results["examples"][:evaluation.EXAMPLES_PER_DOMAIN]]
    assert report["sets"]["cardinals"]["sentences"]["source"][:len(held_out)] == held_out
    page = (out / "forgetting_report.html").read_text(encoding="utf-8")
    assert "occurs in the fine-tuning pairs" in page and 'data-set="years"' in page


def test_saved_model_and_tokenizer_load_and_translate(first_run):
    out, _, _ = first_run
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    generated = model.generate(**tokenizer(["nineteen eighty-four"], return_tensors="pt"), max_new_tokens=8)
    assert generated.shape[0] == 1
    assert isinstance(tokenizer.decode(generated[0], skip_special_tokens=True), str)
    assert model.generation_config.decoder_start_token_id == tokenizer.pad_token_id


def test_second_run_reuses_the_cached_base(first_run, monkeypatch):
    out, cache, _ = first_run
    [base] = os.listdir(cache)
    before = os.path.getmtime(cache / base / "model.safetensors")

    def no_pretraining(*args, **kwargs):
        raise AssertionError("the cached base should have been reused")

    monkeypatch.setattr(demo_run, "pretrain", no_pretraining)
    results = run(out, cache)  # the output folder is a previous demo output: replaced without a flag
    assert results["base_from_cache"] is True
    assert os.listdir(cache) == [base]
    assert os.path.getmtime(cache / base / "model.safetensors") == before
    assert [row["model"] for row in results["rows"]] == ["base", "lambda=0", "lambda=3"]


def test_ordinals_as_the_new_domain_reuse_the_same_base(first_run, tmp_path, monkeypatch):
    _, cache, _ = first_run
    monkeypatch.setattr(demo_run, "pretrain", None)  # the base does not depend on the new domain
    results = run(tmp_path / "ordinals", cache, "--new_domain", "ordinal")
    assert results["base_from_cache"] is True
    assert results["examples"][-1]["reference"].endswith("te")  # German ordinals: "...zigste", "erste"
    for row in results["rows"]:
        assert 0.0 <= row["ordinals_exact_match"] <= 100.0 and 0.0 <= row["cardinals_chrf"] <= 100.0


def test_refuses_to_replace_a_folder_that_is_not_a_demo_output(tmp_path):
    out, cache = tmp_path / "mine", tmp_path / "cache"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(output.NotADemoOutputError, match=r"--output_dir: .*mine' exists and is not a previous demo output"):
        run(out, cache)
    assert (out / "notes.txt").read_text() == "keep me"
    assert not cache.exists()  # refused before any work


def test_overwrite_output_dir_replaces_it(first_run, tmp_path):
    _, cache, _ = first_run
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("replace me")
    run(out, cache, "--overwrite_output_dir")
    assert sorted(os.listdir(out)) == sorted(
        ["config.json", "generation_config.json", "model.safetensors", "source.spm", "target.spm",
         "tokenizer_config.json", "vocab.json", output.RESULTS_FILE,
         "forgetting_report.json", "forgetting_report.png", "forgetting_report.html"]
    )
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary folders left


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--l2sp_lambdas", "-1"], "--l2sp_lambdas: got -1.0; accepted: finite numbers >= 0"),
        (["--l2sp_lambdas", "1", "1"], "--l2sp_lambdas: got [1.0, 1.0]; accepted: distinct values"),
        (["--pretrain_steps", "0"], "--pretrain_steps: got 0; accepted: an integer >= 1"),
        (["--new_domain", "fraction"],
         "argument --new_domain/--new-domain: invalid choice: 'fraction' (choose from 'year', 'ordinal')"),
    ],
)
def test_bad_flags_are_rejected(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--tiny", "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "c"), *flags])
    assert exit_info.value.code == 2
    assert f"hf-l2mt demo: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_cold_run_prints_one_bar_per_phase_and_tidy_log_lines(tmp_path, capsys, recwarn):
    transformers_log = tmp_path / "transformers.log"
    library = logging.getLogger("transformers")
    handler = logging.FileHandler(transformers_log)  # transformers' loggers do not propagate to caplog's
    library.addHandler(handler)
    try:
        run(tmp_path / "out", tmp_path / "cache")
    finally:
        library.removeHandler(handler)
        handler.close()
    printed = capsys.readouterr()
    text = printed.out + printed.err + transformers_log.read_text() + "\n".join(str(w.message) for w in recwarn)

    assert "{'loss'" not in text
    assert "seem to have been set" not in text
    assert "sacremoses" not in text
    for bar in ("pretraining", "fine-tuning, lambda=0", "fine-tuning, lambda=3", "scoring"):
        assert f"{bar}: 100%" in printed.err, bar
    assert re.search(r"^step 30/30  loss \d\.\d\d  grad_norm ", printed.out, re.MULTILINE)
    assert re.search(r"^step 6/6  loss \d\.\d\d  .*  l2sp_lambda 3  .*  l2sp_penalty \d", printed.out, re.MULTILINE)
    assert "tokenizing" not in printed.err and "Loading weights" not in printed.err  # per-call library bars


def test_flags_come_from_a_config_file_and_the_command_line_wins(tmp_path):
    config = tmp_path / "demo.yaml"
    config.write_text("tiny: true\nnew_domain: ordinal\nl2sp_lambdas: [0.5, 2]\nseed: 3\n", encoding="utf-8")
    args = demo.parse_arguments(["--config", str(config), "--seed", "7"])
    assert (args.tiny, args.new_domain, args.l2sp_lambdas, args.seed) == (True, "ordinal", [0.5, 2.0], 7)


def test_the_chosen_models_export_translates_as_pytorch_at_four_beams(first_run, tmp_path):
    """The demo's base stops beam search by CTranslate2's rule (early_stopping), so the export of its chosen
    model gives PyTorch's 4-beam translations, every one of them, not most."""
    pytest.importorskip("ctranslate2")
    from hf_l2mt.apps.cli import main as cli_main
    from hf_l2mt.evaluation.ctranslate2_engine import ExportedModel, translate_with_export
    from hf_l2mt.evaluation.translate import load_translation_model, translate

    out, _, results = first_run
    export_dir = str(tmp_path / "export")
    cli_main(["export", str(out), "--output_dir", export_dir, "--parity_tolerance", "100"])
    sources = [example["source"] for example in results["examples"]] + ["nineteen eighty-four", "seven"]
    model, tokenizer = load_translation_model(str(out))
    assert model.generation_config.early_stopping is True and model.generation_config.num_beams == 4
    pytorch = translate(sources, model, tokenizer, num_beams=4, max_new_tokens=16, progress=False)
    assert translate_with_export(sources, ExportedModel(export_dir), num_beams=4, max_new_tokens=16) == pytorch



def test_a_stop_signal_during_training_says_to_run_the_demo_again_not_to_resume(monkeypatch, tmp_path):
    """The demo trains in temporary folders, so the trainer's "resume with --resume_from_checkpoint" would mislead."""
    import signal

    from hf_l2mt.apps.demo import training
    from hf_l2mt.core.preemption import TrainingPreempted, stop_message

    class StoppedTrainer:
        def __init__(self, args, **kwargs):
            self.output_dir = args.output_dir

        def train(self):
            _, message = stop_message(signal.SIGTERM, 7, self.output_dir, needs_anchor=False)
            raise TrainingPreempted(signal.SIGTERM, 7, None, message)

    monkeypatch.setattr(training, "L2MTTrainer", StoppedTrainer)
    monkeypatch.setattr(training, "use_tidy_progress", lambda trainer, description: None)
    with pytest.raises(TrainingPreempted) as stopped:
        training.train(None, None, [], steps=1, seed=0, description="pretraining")
    assert stopped.value.code == 143 and "resume_from_checkpoint" not in str(stopped.value)
    assert str(stopped.value).startswith("the demo stopped while pretraining (training stopped by SIGTERM after update 7)")
    assert "run the same command again" in str(stopped.value)
