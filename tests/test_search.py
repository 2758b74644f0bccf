"""The λ search on a tiny Marian: the trial table, the Pareto front, resuming, seeding, pruning, bad options."""

import ast
import csv
import math
import os

import optuna
import pytest

from hf_l2mt.apps import cli
from hf_l2mt.apps.search.study import LambdaSearch, SearchSettings, prune_reason, trial_rows
from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search")
    return {
        "model_dir": save_checkpoint(folder / "base", "marian"),
        "train": write_tsv(folder / "train.tsv", sentence_pairs(24, seed=0)),
        "in_domain_eval": write_tsv(folder / "in_domain.tsv", sentence_pairs(4, seed=1)),
        "general_eval": write_tsv(folder / "general.tsv", sentence_pairs(4, seed=2)),
    }


def search_argv(inputs, output_dir, **overrides) -> list[str]:
    """``hf-l2mt search`` flags for a study of 2-update trials on the tiny data."""
    options = {"src_lang": "en", "tgt_lang": "de", **{k: v for k, v in inputs.items() if k != "model_dir"},
               "output_dir": output_dir, "n_trials": 3, "max_steps": 2, "first_eval_step": 1, "batch_size": 4,
               "learning_rate": 1e-2, "max_length": 12, "num_threads": 1, **overrides}
    return ["search", inputs["model_dir"], *[part for k, v in options.items() for part in (f"--{k}", str(v))]]


def read_table(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def non_dominated(points: dict) -> set:
    return {key for key, (a, b) in points.items()
            if not any(c >= a and d >= b and (c, d) != (a, b) for c, d in points.values())}


def test_study_writes_the_table_and_front_and_resumes_to_n_trials(inputs, tmp_path):
    out = tmp_path / "study"
    cli.main(search_argv(inputs, out, n_trials=2))
    first = read_table(out / "trials.csv")
    assert [row["number"] for row in first] == ["0", "1"]

    cli.main(search_argv(inputs, out, n_trials=3))

    table = read_table(out / "trials.csv")
    assert [row["number"] for row in table] == ["0", "1", "2"]
    assert [row["l2sp_lambda"] for row in table[:2]] == [row["l2sp_lambda"] for row in first]
    assert all(1e-3 <= float(row["l2sp_lambda"]) <= 10.0 for row in table)
    assert {row["state"] for row in table} == {"COMPLETE"}
    assert {row["l2sp_schedule"] for row in table} == {"constant"} and {row["weight_decay"] for row in table} == {"0.0"}
    points = {row["number"]: (float(row["in_domain_bleu"]), float(row["general_bleu"])) for row in table}
    assert {row["number"] for row in table if row["is_pareto"] == "True"} == non_dominated(points)
    assert (out / "pareto_front.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (out / "study.db").is_file()


def test_pareto_column_is_the_non_dominated_set():
    study = optuna.create_study(directions=["maximize", "maximize"])
    distribution = optuna.distributions.FloatDistribution(1e-3, 10.0, log=True)
    for lam, values in ((0.01, (30.0, 10.0)), (0.1, (20.0, 20.0)), (1.0, (10.0, 25.0)), (3.0, (9.0, 24.0)),
                        (5.0, (20.0, 15.0))):
        study.add_trial(optuna.trial.create_trial(
            params={"l2sp_lambda": lam}, distributions={"l2sp_lambda": distribution}, values=list(values),
            user_attrs={"params": {"l2sp_lambda": lam}}))

    rows = trial_rows(study, "bleu")

    assert [row["l2sp_lambda"] for row in rows if row["is_pareto"]] == [0.01, 0.1, 1.0]
    assert [row["state"] for row in rows] == ["COMPLETE"] * 5


def sampled_lambdas(inputs, output_dir, seed: int, count: int = 4) -> list[float]:
    settings = SearchSettings(src_lang="en", tgt_lang="de", output_dir=str(output_dir), seed=seed, max_length=12,
                              **inputs)
    os.makedirs(output_dir)
    search = LambdaSearch(settings)
    study = search.open_study()
    values = []
    for _ in range(count):
        trial = study.ask()
        values.append(search.suggest(trial)["l2sp_lambda"])
        trial.set_user_attr("params", {})
        study.tell(trial, [0.0, 0.0])
    return values


def test_same_seed_samples_the_same_lambdas(inputs, tmp_path):
    first = sampled_lambdas(inputs, tmp_path / "a", seed=7)
    again = sampled_lambdas(inputs, tmp_path / "b", seed=7)
    other = sampled_lambdas(inputs, tmp_path / "c", seed=8)

    assert first == again
    assert first != other
    assert len(set(first)) == len(first)


def test_hopeless_trials_are_pruned_at_the_first_evaluation(inputs, tmp_path, monkeypatch):
    calls = []

    def scripted_scores(search, model):
        # The unregularized reference's first evaluation comes first: every trial then scores far below it.
        calls.append(model)
        return {"in_domain": 40.0, "general": 30.0} if len(calls) == 1 else {"in_domain": 10.0, "general": 30.0}

    monkeypatch.setattr(LambdaSearch, "evaluate", scripted_scores)
    out = tmp_path / "pruned"
    cli.main(search_argv(inputs, out, n_trials=2, max_steps=3))

    table = read_table(out / "trials.csv")
    assert [row["state"] for row in table] == ["PRUNED", "PRUNED"]
    assert [row["in_domain_bleu"] for row in table] == ["10.0", "10.0"]
    assert {row["is_pareto"] for row in table} == {"False"}
    study = optuna.load_study(study_name="l2sp_search", storage=f"sqlite:///{out / 'study.db'}")
    assert study.trials[0].user_attrs["pruned_because"] == "in-domain 10.00 < 0.5 x best so far 40.00"
    # reference: first evaluation, base, final; each trial: its first evaluation only
    assert len(calls) == 3 + 2


def test_prune_rule():
    reference = {"in_domain": 40.0, "general": 30.0}
    assert prune_reason({"in_domain": 25.0, "general": 29.0}, reference, [], 0.5, 5.0) is None
    assert prune_reason({"in_domain": 25.0, "general": 29.0}, reference, [{"in_domain": 60.0, "general": 0.0}],
                        0.5, 5.0) == "in-domain 25.00 < 0.5 x best so far 60.00"
    assert prune_reason({"in_domain": 30.0, "general": 24.0}, reference, [], 0.5, 5.0) == (
        "general 24.00 < unregularized 30.00 - 5")
    assert prune_reason({"in_domain": 0.0, "general": 0.0}, reference, [], 0.0, math.inf) is None


@pytest.mark.parametrize("overrides, message", [
    ({"lambda_min": 1.0, "lambda_max": 1.0}, "--lambda_min 1 >= --lambda_max 1; accepted: min < max"),
    ({"lambda_min": 0.0}, "--lambda_min: got 0; λ is sampled on a log scale: accepted: > 0"),
    ({"lambda_min": -1.0}, "--lambda_min: got -1; λ is sampled on a log scale"),
    ({"metric": "ter"}, "--metric: got 'ter'; accepted: bleu, chrf, exact_match"),
    ({"schedules": ["linear"]}, "--schedules: got ['linear']; accepted: one or both of constant, sigmoid"),
    ({"first_eval_step": 5, "max_steps": 4}, "--first_eval_step: got 5; accepted: 1 .. --max_steps (4)"),
    ({"prune_fraction": 1.5}, "--prune_fraction: got 1.5; accepted: 0 .. 1"),
])
def test_bad_settings_name_the_flag_and_what_is_accepted(inputs, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)").replace(".", r"\.")):
        SearchSettings(src_lang="en", tgt_lang="de", output_dir=str(tmp_path), **inputs, **overrides)


def test_cli_reports_bad_options_and_changed_settings(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(search_argv(inputs, tmp_path / "bad", lambda_min=2, lambda_max=1))
    assert exit_info.value.code == 2
    assert "hf-l2mt search: error: --lambda_min 2 >= --lambda_max 1" in capsys.readouterr().err

    out = tmp_path / "changed"
    settings = SearchSettings(src_lang="en", tgt_lang="de", output_dir=str(out), max_steps=3, first_eval_step=1,
                              batch_size=4, learning_rate=1e-2, max_length=12, **inputs)
    os.makedirs(out)
    LambdaSearch(settings).open_study()
    with pytest.raises(SystemExit):
        cli.main(search_argv(inputs, out, max_steps=2))
    assert "was run with other settings (max_steps=3); use the same ones to resume" in capsys.readouterr().err


def test_recipe_script_launches_the_search():
    tree = ast.parse(open(os.path.join(ROOT, "recipes", "search_lambda.py"), encoding="utf-8").read())
    imports = [(node.module, [alias.name for alias in node.names]) for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom)]
    assert imports == [("hf_l2mt.apps.search.study", ["main"])]
