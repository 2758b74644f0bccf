"""Each recipe's main() end to end on a tiny checkpoint and tiny local data; settings layers; bad flags."""

import ast
import json
import logging
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import hf_l2mt.apps.recipes.runner
from hf_l2mt.apps.terminal.console import format_number
from hf_l2mt.core.anchor import ANCHOR_FILE
from hf_l2mt.apps.recipes.runner import RecipeArguments, load_recipe_pairs, parse_arguments
from hf_l2mt.apps.recipes import de_en, domain_adapt, en_de, load_recipe, recipe_names, t5_en_de
from hf_l2mt.evaluation.translate import load_translation_model, translate
from hub_server import TOKEN, fake_hub  # noqa: F401 (fake_hub is a fixture)
from tiny_checkpoints import save_checkpoint, sentence_pairs, write_ding, write_tsv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A few updates of a tiny model: 2 updates of 4 pairs, one greedy evaluation at update 2.
TINY = [
    "--max_steps", "2", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
    "--per_device_eval_batch_size", "8", "--eval_steps", "2", "--save_strategy", "no", "--logging_steps", "1",
    "--generation_num_beams", "1", "--generation_max_length", "10", "--max_source_length", "16",
    "--max_target_length", "16", "--warmup_steps", "0", "--learning_rate", "1e-2", "--use_cpu",
    "--disable_tqdm", "true", "--dataloader_num_workers", "0",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return {
        "train": write_tsv(folder / "train.tsv", sentence_pairs(40, seed=0)),
        "general": write_tsv(folder / "general.tsv", sentence_pairs(6, seed=1)),
    }


@pytest.fixture(scope="module")
def marian_dir(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("opus-mt-tiny"), "marian")


@pytest.fixture
def translated(monkeypatch):
    """Records the sentences and options of every translate() call the runner makes."""
    calls = []

    def recording_translate(texts, *args, **kwargs):
        calls.append((list(texts), kwargs))
        return translate(texts, *args, **kwargs)

    monkeypatch.setattr(hf_l2mt.apps.recipes.runner, "translate", recording_translate)
    return calls


def tsv_column(path, column):
    rows = [line.split("\t") for line in open(path, encoding="utf-8").read().splitlines()]
    return [row[rows[0].index(column)] for row in rows[1:]]


def assert_finished_run(out, scores, names, base_dir):
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    assert saved == scores and list(saved) == names
    card = (out / "README.md").read_text(encoding="utf-8")
    for name, result in saved.items():
        assert set(result["signatures"]) == {"bleu", "chrf", "chrf_pp", "ter"}
        assert result["signatures"]["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
        row = f"| {name} | {result['bleu']:.2f} | {result['chrf']:.2f} | {result['ter']:.2f} | "
        assert row in card and result["signatures"]["chrf"] in card
    trained, base = load_file(out / "model.safetensors"), load_file(os.path.join(base_dir, "model.safetensors"))
    assert any(not trained[name].equal(base[name]) for name in base), "the saved weights are the starting ones"
    model, tokenizer = load_translation_model(str(out))
    output = translate(["the dog barks"], model, tokenizer, num_beams=1, max_new_tokens=5, progress=False)
    assert len(output) == 1 and isinstance(output[0], str)


def test_en_de_saves_scores_and_card_and_publishes_without_checkpoints_anchor_or_token(
    fake_hub, marian_dir, data, tmp_path, monkeypatch
):
    out = tmp_path / "opus-mt-en-de-tiny"
    argv = [
        "--model_name_or_path", marian_dir, "--train_source", data["train"],
        "--eval_sources", f"general={data['general']}", *TINY, "--save_strategy", "steps", "--save_steps", "2",
        "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "someone/opus-mt-en-de-tiny", "--hub_token", TOKEN,
    ]
    monkeypatch.setattr(sys, "argv", ["recipes/en_de.py", *argv])

    scores = en_de.main(argv)

    assert_finished_run(out, scores, ["general"], marian_dir)
    assert scores["general"]["num_sentences"] == 6
    assert (out / "checkpoint-2" / ANCHOR_FILE).is_file() and (out / "training_args.bin").is_file()
    committed = fake_hub.committed
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "scores.json"} <= set(committed)
    assert not [path for path in committed if "checkpoint-" in path or path in (ANCHOR_FILE, "training_args.bin")]
    for path, content in committed.items():
        assert content == (out / path).read_bytes(), path
        assert TOKEN.encode() not in content, path
    assert "--hub_token ***" in committed["README.md"].decode()
    create = next(request for request in fake_hub.received if request["path"] == "/api/repos/create")
    assert (json.loads(create["body"])["organization"], json.loads(create["body"])["name"]) == (
        "someone", "opus-mt-en-de-tiny",
    )
    commits = [request for request in fake_hub.received if "/commit/" in request["path"]]
    assert len(commits) == 1, "the run publishes once, at the end"


def test_de_en_translates_the_german_side(marian_dir, data, tmp_path, translated):
    out = tmp_path / "opus-mt-de-en-tiny"
    argv = ["--model_name_or_path", marian_dir, "--train_source", data["train"],
            "--eval_sources", f"general={data['general']}", *TINY, "--output_dir", str(out)]

    scores = de_en.main(argv)

    assert_finished_run(out, scores, ["general"], marian_dir)
    (sources, options), = translated
    assert sources == tsv_column(data["general"], "de")
    assert options["source_prefix"] == "" and options["num_beams"] == 1 and options["max_new_tokens"] == 10


def test_a_run_prints_one_bar_and_tidy_lines_and_logs_the_values_unchanged(marian_dir, data, tmp_path, capsys,
                                                                           recwarn):
    out = tmp_path / "tidy"
    argv = ["--model_name_or_path", marian_dir, "--train_source", data["train"],
            "--eval_sources", f"general={data['general']}", *TINY, "--disable_tqdm", "false",
            "--save_strategy", "steps", "--save_steps", "2", "--output_dir", str(out)]
    transformers_log = tmp_path / "transformers.log"
    library = logging.getLogger("transformers")
    handler = logging.FileHandler(transformers_log)  # transformers' loggers do not propagate to caplog's
    library.addHandler(handler)
    try:
        en_de.main(argv)
    finally:
        library.removeHandler(handler)
        handler.close()
    printed = capsys.readouterr()
    text = printed.out + printed.err + transformers_log.read_text() + "\n".join(str(w.message) for w in recwarn)

    assert "{'loss'" not in text and "'eval_general_bleu'" not in text
    assert "seem to have been set" not in text
    assert "sacremoses" not in text
    assert "training: 100%" in printed.err
    log = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    first = next(entry for entry in log if "loss" in entry)
    assert isinstance(first["loss"], float) and isinstance(first["grad_norm"], float)  # logged as numbers
    assert f"step 1/2  loss {format_number(first['loss'])}  grad_norm {format_number(first['grad_norm'])}" in printed.out
    evaluation = next(entry for entry in log if "eval_general_chrf" in entry)
    assert f"eval_general_chrf {format_number(evaluation['eval_general_chrf'])}" in printed.out


def test_t5_en_de_puts_the_task_prefix_before_every_source(tmp_path, data, translated):
    t5_dir = save_checkpoint(tmp_path / "t5-tiny", "t5")
    out = tmp_path / "t5-en-de-tiny"
    argv = ["--model_name_or_path", t5_dir, "--train_source", data["train"],
            "--eval_sources", f"general={data['general']}", *TINY, "--output_dir", str(out)]

    scores = t5_en_de.main(argv)

    assert_finished_run(out, scores, ["general"], t5_dir)
    (sources, options), = translated
    assert sources == tsv_column(data["general"], "en")
    assert options["source_prefix"] == "translate English to German: "


def test_domain_adapt_scores_held_out_ding_subject_and_general_sets_and_documents_checkpoints(
    marian_dir, data, tmp_path, translated
):
    medical, other = sentence_pairs(40, seed=5)[:30], sentence_pairs(40, seed=5)[30:]
    ding = write_ding(tmp_path / "de-en", medical + other, ["med."] * 30 + ["comp."] * 10)
    out = tmp_path / "opus-mt-de-en-med-tiny"
    argv = ["--model_name_or_path", marian_dir, "--train_source", f"ding:{ding}", "--eval_holdout", "4",
            "--eval_sources", f"general={data['general']}", *TINY, "--save_strategy", "steps", "--save_steps", "2",
            "--output_dir", str(out)]

    scores = domain_adapt.main(argv)

    assert_finished_run(out, scores, ["in_domain", "general"], marian_dir)
    assert scores["in_domain"]["num_sentences"] == 4
    (in_domain_sources, _), (general_sources, _) = translated
    assert set(in_domain_sources) <= {german for german, _ in medical}
    assert general_sources == tsv_column(data["general"], "de")
    log = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    evaluation = {key: value for entry in log for key, value in entry.items() if key.startswith("eval_")}
    checkpoint_card = (out / "checkpoint-2" / "README.md").read_text(encoding="utf-8")
    for name, size in (("in_domain", 4), ("general", 6)):
        row = f"| {name} | {evaluation[f'eval_{name}_bleu']:.2f} | {evaluation[f'eval_{name}_chrf']:.2f} | "
        assert row in checkpoint_card and f"| {size} |" in checkpoint_card


def test_held_out_sources_leave_training_and_domain_applies_to_ding_only(data, caplog):
    recipe = RecipeArguments(
        model_name_or_path="unused", src_lang="en", tgt_lang="de", train_source=data["train"], domain="med.",
        eval_holdout=5, eval_sources=[f"general={data['general']}"], max_eval_samples=3,
    )
    with caplog.at_level(logging.WARNING, logger="hf_l2mt"):
        train, evaluation = load_recipe_pairs(recipe, seed=0)

    assert "domain='med.' ignored: only Ding sources have subject labels" in caplog.text
    assert list(evaluation) == ["in_domain", "general"]
    assert len(evaluation["in_domain"]) == len(evaluation["general"]) == 3  # max_eval_samples
    assert not set(evaluation["in_domain"]["source"]) & set(train["source"])
    assert len(train) + 5 == 40


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "l2sp_lambda: 0.5\nlearning_rate: 5e-5\nmax_steps: 300\nbf16: false\n"
              "eval_sources: [general=general.tsv, news=news.tsv]\n"),
    (".json", '{"l2sp_lambda": 0.5, "learning_rate": "5e-5", "max_steps": 300, "bf16": "false",\n'
              ' "eval_sources": ["general=general.tsv", "news=news.tsv"]}\n'),
])
def test_config_file_wins_over_the_recipe_and_the_command_line_wins_over_it(tmp_path, suffix, text):
    config = write(tmp_path / f"settings{suffix}", text)
    for argv in (["--config", config, "--max_steps", "7"], ["--max_steps", "7", "--config", config]):
        recipe, args = parse_arguments(en_de.CONFIG, [*argv, "--output_dir", str(tmp_path)])

        assert args.max_steps == 7  # command line over file
        assert args.l2sp_lambda == 0.5 and args.learning_rate == 5e-5 and args.bf16 is False  # file over recipe
        assert recipe.eval_sources == ["general=general.tsv", "news=news.tsv"]
        assert args.per_device_train_batch_size == 16 and recipe.model_name_or_path == "Helsinki-NLP/opus-mt-en-de"
        assert args.predict_with_generate and not args.remove_unused_columns  # the runner's defaults
        assert args.train_sampling_strategy == "group_by_length"


@pytest.mark.parametrize("argv, message", [
    (["--l2sp_lambdaa", "1"], "unrecognized arguments: --l2sp_lambdaa 1"),
    (["--l2sp_lambda", "-1"], "l2sp_lambda: got -1.0; accepted: a finite number >= 0"),
    (["--max_steps", "many"], "argument --max_steps/--max-steps: invalid int value: 'many'"),
    (["--train_sampling_strategy", "grouped"], "--train-sampling-strategy: invalid choice: 'grouped' (choose from"),
    (["--eval_sources", "general"], "eval_sources: 'general' is not NAME=SOURCE"),
    (["--eval_sources", "a=x.tsv", "a=y.tsv"], "eval_sources: the name 'a' is given twice"),
    (["--eval_holdout", "-3"], "eval_holdout: got -3; accepted: an integer >= 0"),
    (["--model_name_or_path", ""], "model_name_or_path: not set; give --model_name_or_path"),
])
def test_bad_flags_name_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        en_de.main(argv)

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name, text, message", [
    ("s.yaml", "l2sp_lamda: 1\n", "s.yaml: 'l2sp_lamda' is not a setting of this parser; did you mean 'l2sp_lambda'?"),
    ("s.yaml", "max_steps: many\n", "s.yaml: max_steps='many' is not a valid int"),
    ("s.yaml", "train_sampling_strategy: grouped\n", "s.yaml: train_sampling_strategy='grouped'; accepted: 'random'"),
    ("s.yaml", "l2sp_lambda: 1\nmax_steps: [2\n", "s.yaml line 3: not valid YAML"),
    ("s.json", '{"max_steps": 2,}', "s.json line 1: not valid JSON"),
    ("s.yaml", "- max_steps\n", "s.yaml: holds a list; expected a mapping of flag names to values"),
    ("s.txt", "max_steps: 2\n", "--config s.txt: accepted are files ending in .yaml, .yml, .json"),
])
def test_bad_config_files_name_the_file_and_the_setting(tmp_path, monkeypatch, name, text, message, capsys):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / name, text)

    with pytest.raises(SystemExit) as exit_info:
        en_de.main(["--config", name])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_every_recipe_has_an_entry_script_that_runs_the_packaged_recipe():
    # search_lambda.py launches the λ search (tests/test_search.py), not a training recipe.
    scripts = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, "recipes"))
                     if name.endswith(".py") and name != "search_lambda.py")
    assert scripts == recipe_names() == ["de_en", "domain_adapt", "en_de", "nllb_en_de", "t5_en_de"]
    for name in scripts:
        tree = ast.parse(open(os.path.join(ROOT, "recipes", f"{name}.py"), encoding="utf-8").read())
        imports = [(node.module, [alias.name for alias in node.names]) for node in ast.walk(tree)
                   if isinstance(node, ast.ImportFrom)]
        assert imports == [(f"hf_l2mt.apps.recipes.{name}", ["main"])], name
    with pytest.raises(ValueError, match="recipe 'en_fr' does not exist; accepted: de_en, domain_adapt, en_de"):
        load_recipe("en_fr")


@pytest.mark.slow
def test_accelerate_launch_runs_the_recipe_script_with_a_config_file(marian_dir, data, tmp_path):
    out = tmp_path / "launched"
    config = write(tmp_path / "tiny.yaml", "max_steps: 3\nl2sp_lambda: 0.25\nlogging_steps: 1\n")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "recipes/en_de.py",
        "--model_name_or_path", marian_dir, "--train_source", data["train"],
        "--eval_sources", f"general={data['general']}", *TINY, "--config", config, "--output_dir", str(out),
    ]
    env = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr[-4000:]
    scores = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    assert_finished_run(out, scores, ["general"], marian_dir)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| `max_steps` | `2` |" in card and "| `l2sp_lambda` | `0.25` |" in card
    assert f"en_de.py --model_name_or_path {os.path.basename(marian_dir)} " in card


def test_run_destroys_the_process_group_before_it_returns_also_when_it_fails(monkeypatch, tmp_path):
    """A launched process left with its gloo group alive can abort at exit (``runner.end_process_group``)."""

    def failing_run(recipe, args):
        raise RuntimeError("the run failed")

    monkeypatch.setattr(hf_l2mt.apps.recipes.runner, "_run", failing_run)
    argv = ["--model_name_or_path", "m", "--train_source", "t.tsv", "--output_dir", str(tmp_path / "out"), *TINY]
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    try:
        with pytest.raises(RuntimeError, match="the run failed"):
            hf_l2mt.apps.recipes.runner.run(en_de.CONFIG, argv)
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    hf_l2mt.apps.recipes.runner.end_process_group()  # without a group: nothing to do, and none is made
    assert not torch.distributed.is_initialized()


class ProcessEnded(Exception):
    """Raised by a stand-in for os._exit, with the status it was given."""


@pytest.mark.parametrize("rank", [0, 1])
def test_after_a_run_the_other_processes_end_there_and_the_main_one_returns_without_the_group(monkeypatch, tmp_path,
                                                                                              rank):
    """The other processes leave through os._exit, past Python's shutdown, where gloo's threads can abort them
    (``runner.end_other_process``); the main one destroys the group and returns its scores."""
    runner = hf_l2mt.apps.recipes.runner
    monkeypatch.setattr(runner, "_run", lambda recipe, args: {"general": {"chrF": 1.0}})
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: rank)

    def exit_now(status):
        raise ProcessEnded(status)

    monkeypatch.setattr(runner.os, "_exit", exit_now)
    argv = ["--model_name_or_path", "m", "--train_source", "t.tsv", "--output_dir", str(tmp_path / "out"), *TINY]
    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    try:
        if rank == 0:
            assert runner.run(en_de.CONFIG, argv) == {"general": {"chrF": 1.0}}
            assert not torch.distributed.is_initialized()
        else:
            with pytest.raises(ProcessEnded) as ended:
                runner.run(en_de.CONFIG, argv)
            assert ended.value.args == (0,)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_cpu_processes_run_the_recipe_and_the_main_process_writes_the_outputs(marian_dir, data, tmp_path):
    out = tmp_path / "two-processes"
    config = os.path.join(ROOT, "recipes", "accelerate_configs", "cpu_multi_process.yaml")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, "--main_process_port", port,
        "recipes/en_de.py", "--model_name_or_path", marian_dir, "--train_source", data["train"],
        "--eval_sources", f"general={data['general']}", *TINY, "--l2sp_lambda", "0.25",
        "--save_strategy", "steps", "--save_steps", "2", "--output_dir", str(out),
    ]
    env = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"),
           "OMP_NUM_THREADS": "1"}

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr[-4000:]
    checkpoint = out / "checkpoint-2"
    # Each process saves its RNG state for resuming; rank 1's file shows that two processes trained.
    assert (checkpoint / "rng_state_1.pth").is_file(), sorted(os.listdir(checkpoint))
    scores = json.loads((out / "scores.json").read_text(encoding="utf-8"))
    assert_finished_run(out, scores, ["general"], marian_dir)
    assert (checkpoint / ANCHOR_FILE).is_file()
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]
