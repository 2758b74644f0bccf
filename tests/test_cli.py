"""The hf-l2mt console script: translate (stdin, --input), evaluate, train by name or path, help and bad flags."""

import io
import json
import os
import subprocess
import sys

import pytest

from hf_l2mt.apps.cli import main
from hf_l2mt.evaluation.metrics import score_translations
from hf_l2mt.evaluation.translate import load_translation_model, translate
from tiny_checkpoints import save_checkpoint, sentence_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GREEDY = ["--num_beams", "1", "--max_new_tokens", "8", "--batch_size", "3", "--device", "cpu"]
PAIRS = sentence_pairs(7, seed=11)


def console_script() -> list[str]:
    """The installed ``hf-l2mt`` entry point of this environment, else the module it runs."""
    script = os.path.join(os.path.dirname(sys.executable), "hf-l2mt")
    return [script] if os.path.isfile(script) else [sys.executable, "-m", "hf_l2mt.apps.cli"]


def run_console(args, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1"}  # this checkout's hf_l2mt
    return subprocess.run([*console_script(), *args], env=env, capture_output=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("opus-mt-tiny"), "marian")


@pytest.fixture(scope="module")
def expected(model_dir):
    """Translations of the source sentences, made in this process with the same options."""
    model, tokenizer = load_translation_model(model_dir)
    translations = translate(
        [source for source, _ in PAIRS], model, tokenizer, num_beams=1, max_new_tokens=8, progress=False
    )
    assert len(set(translations)) > 2, "translations must differ, or a shuffled order would go unnoticed"
    return translations


def write_lines(path, lines) -> str:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def test_translate_reads_stdin_and_writes_one_line_per_sentence(model_dir, expected):
    sources = "".join(f"{source}\n" for source, _ in PAIRS).encode()

    result = run_console(["translate", model_dir, *GREEDY], input=sources)

    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert result.stdout.decode().split("\n") == [*expected, ""]


def test_translate_reads_an_input_file(model_dir, expected, tmp_path, capsys):
    path = write_lines(tmp_path / "input.en", [source for source, _ in PAIRS])

    main(["translate", model_dir, "--input", path, *GREEDY])

    assert capsys.readouterr().out.split("\n") == [*expected, ""]


def test_evaluate_prints_a_table_and_saves_scores_with_signatures(model_dir, expected, tmp_path):
    sources = write_lines(tmp_path / "test.en", [source for source, _ in PAIRS])
    references = write_lines(tmp_path / "test.de", [target for _, target in PAIRS])
    short = write_lines(tmp_path / "short.en", [PAIRS[0][0]]), write_lines(tmp_path / "short.de", [PAIRS[0][1]])
    output_json = tmp_path / "scores.json"

    result = run_console([
        "evaluate", model_dir, "--test", f"newstest={sources},{references}", "--test", f"short={short[0]},{short[1]}",
        *GREEDY, "--output_json", str(output_json),
    ])

    assert result.returncode == 0, result.stderr.decode()[-3000:]
    scores = json.loads(output_json.read_text(encoding="utf-8"))
    assert scores == {
        "newstest": score_translations(expected, [target for _, target in PAIRS]),
        "short": score_translations(expected[:1], [PAIRS[0][1]]),
    }
    header, *rows = result.stdout.decode().splitlines()
    assert header.split() == ["set", "BLEU", "chrF", "TER", "exact", "match", "sentences"]
    assert rows[0].split() == [
        "newstest", *(f"{scores['newstest'][key]:.2f}" for key in ("bleu", "chrf", "ter", "exact_match")), "7"
    ]
    assert rows[1].split()[0] == "short" and rows[1].split()[-1] == "1"


def test_evaluate_writes_scores_next_to_the_model_by_default(tmp_path, capsys):
    model_dir = save_checkpoint(tmp_path / "model", "marian")
    source, reference = write_lines(tmp_path / "a.en", ["the dog"]), write_lines(tmp_path / "a.de", ["dog the"])

    main(["evaluate", model_dir, "--test", f"a={source},{reference}", *GREEDY])

    saved = json.loads((tmp_path / "model" / "test_scores.json").read_text(encoding="utf-8"))
    assert list(saved) == ["a"] and saved["a"]["num_sentences"] == 1 and "signatures" in saved["a"]
    assert capsys.readouterr().out.splitlines()[1].split()[0] == "a"


def test_train_runs_a_recipe_file_with_the_flags_after_it(tmp_path, capsys):
    recipe = tmp_path / "my_recipe.py"
    recipe.write_text("def main(argv=None):\n    print('recipe got', argv)\n", encoding="utf-8")

    main(["train", str(recipe), "--config", "my.yaml", "--max_steps", "3"])

    assert capsys.readouterr().out == "recipe got ['--config', 'my.yaml', '--max_steps', '3']\n"


def test_train_help_shows_the_recipe_flags_with_its_settings_as_defaults(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "300")  # argparse wraps help at the terminal width
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "en_de", "--help"])

    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "accelerate launch recipes/en_de.py --output_dir runs/opus-mt-en-de-wmt16" in help_text
    sections = [help_text.index(text) for text in ("recipe arguments:", "--train_source", "options:", "--l2sp_lambda L2")]
    assert sections == sorted(sections)
    assert "--config FILE" in help_text
    assert "(default: Helsinki-NLP/opus-mt-en-de)" in help_text


def test_t5_model_without_a_prefix_gets_a_warning(tmp_path, capsys):
    model_dir = save_checkpoint(tmp_path / "t5", "t5")
    path = write_lines(tmp_path / "input.en", ["the dog"])

    main(["translate", model_dir, "--input", path, *GREEDY])

    assert "T5 model without --source_prefix" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["translate", "{model}", "--num_beams", "0"], "hf-l2mt translate: error: --num_beams: got 0; accepted: an integer >= 1"),
    (["translate", "{model}", "--num_beams", "two"], "argument --num_beams/--num-beams: invalid int value: 'two'"),
    (["translate", "{model}", "--beams", "2"], "unrecognized arguments: --beams 2"),
    (["translate"], "hf-l2mt translate: error: the following arguments are required: MODEL_DIR"),
    (["translate", "{model}", "--device", "gpu"], "hf-l2mt translate: error: --device 'gpu': accepted: cpu, cuda"),
    (["translate", "{model}", "--input", "missing.en"], "hf-l2mt translate: error: [Errno 2] No such file"),
    (["evaluate", "{model}"], "hf-l2mt evaluate: error: --test: none given; accepted: one or more NAME=SOURCE_FILE"),
    (["evaluate", "{model}", "--test", "general=test.en"],
     "hf-l2mt evaluate: error: --test: 'general=test.en' is not NAME=SOURCE_FILE,REFERENCE_FILE"),
    (["evaluate", "missing_model", "--test", "a=test.en,test.en"],
     "hf-l2mt evaluate: error: load_translation_model: 'missing_model' does not exist"),
    (["evaluate", "{model}", "--test", "a=test.en,test.en", "--test", "a=test.en,test.en"],
     "--test: two test sets have the same NAME"),
    (["train", "en_fr"], "hf-l2mt train: error: recipe 'en_fr' does not exist; accepted: de_en, domain_adapt, en_de"),
    (["train", "missing.py"], "hf-l2mt train: error: RECIPE missing.py: no such file"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    (["plot", "run", "--metric", "ter"], "argument --metric: invalid choice: 'ter' (choose from 'bleu', 'chrf', 'exact_match')"),
])
def test_bad_arguments_name_the_flag_and_the_value(args, message, model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_lines(tmp_path / "test.en", ["the dog"])

    with pytest.raises(SystemExit) as exit_info:
        main([arg.format(model=model_dir) for arg in args])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_stdin_that_is_not_utf8_is_an_error_with_its_byte_offset(model_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the \xdfdog\n")))

    with pytest.raises(SystemExit) as exit_info:
        main(["translate", model_dir])

    assert exit_info.value.code == 2
    assert "hf-l2mt translate: error: <stdin>: not valid UTF-8 at byte 4" in capsys.readouterr().err
