"""``hf-l2mt plot`` on a tiny real run's logs; key selection; missing logs and missing matplotlib."""

import json
import sys

import pytest

from hf_l2mt.apps import cli
from hf_l2mt.apps.plots.figures import find_trainer_state, import_pyplot, plot_groups, read_log_history
from hf_l2mt.apps.recipes import domain_adapt
from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 4-update domain-adaptation run with L2-SP, weight decay and two evaluation sets, checkpointed at 4."""
    folder = tmp_path_factory.mktemp("plot-run")
    out = folder / "run"
    domain_adapt.main([
        "--model_name_or_path", save_checkpoint(folder / "base", "marian"), "--src_lang", "en", "--tgt_lang", "de",
        "--train_source", write_tsv(folder / "train.tsv", sentence_pairs(24, seed=0)),
        "--eval_holdout", "4", "--eval_sources", f"general={write_tsv(folder / 'general.tsv', sentence_pairs(4, 1))}",
        "--max_steps", "4", "--per_device_train_batch_size", "4", "--eval_steps", "2", "--save_steps", "4",
        "--logging_steps", "1", "--l2sp_lambda", "0.5", "--l2sp_schedule", "linear", "--weight_decay", "0.01",
        "--generation_num_beams", "1", "--generation_max_length", "8", "--max_source_length", "16",
        "--max_target_length", "16", "--warmup_steps", "0", "--learning_rate", "1e-2", "--use_cpu",
        "--disable_tqdm", "true", "--dataloader_num_workers", "0", "--output_dir", str(out),
    ])
    return out


def test_plot_draws_every_logged_series_of_a_real_run(run_dir, tmp_path, capsys):
    log = read_log_history(str(run_dir))
    groups = plot_groups(log)
    assert groups["loss"]["keys"] == {"loss": "loss"}
    assert groups["penalties"]["keys"] == {"l2sp_penalty": "l2sp_penalty"}
    assert groups["strengths"]["keys"] == {"l2sp_lambda": "l2sp_lambda", "weight_decay": "weight_decay"}
    assert groups["distance"]["keys"] == {"l2sp_distance": "l2sp_distance"}
    assert groups["eval_bleu"]["keys"] == {"general": "eval_general_bleu", "in_domain": "eval_in_domain_bleu"}
    assert [entry["l2sp_lambda"] for entry in log if "l2sp_lambda" in entry] == [0.5, 0.375, 0.25, 0.125]

    cli.main(["plot", str(run_dir), "--output_dir", str(tmp_path / "plots")])

    printed = capsys.readouterr().out.split()
    names = ["loss.png", "penalties.png", "strengths.png", "distance.png", "eval_bleu.png"]
    assert printed == [str(tmp_path / "plots" / name) for name in names]
    for name in names:
        assert (tmp_path / "plots" / name).read_bytes().startswith(PNG_SIGNATURE)


def test_state_is_read_from_the_run_folder_or_its_newest_checkpoint(tmp_path):
    for step in (9, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
        state = {"log_history": [{"step": step, "loss": 1.0}]}
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    assert find_trainer_state(str(tmp_path)) == str(tmp_path / "checkpoint-10" / "trainer_state.json")
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 12, "loss": 0.5}]}))
    assert read_log_history(str(tmp_path)) == [{"step": 12, "loss": 0.5}]


def test_any_penalty_lambda_and_eval_set_is_picked_by_name():
    log = [{"step": 1, "loss": 2.0, "kl_to_base": 0.1, "ewc_penalty": 0.2, "ewc_lambda": 3.0, "grad_norm": 1.0},
           {"step": 2, "eval_bleu": 10.0, "eval_chrf": 30.0, "eval_loss": 1.0}]
    groups = plot_groups(log, metric="chrf")
    assert groups["penalties"]["keys"] == {"ewc_penalty": "ewc_penalty", "kl_to_base": "kl_to_base"}
    assert groups["strengths"]["keys"] == {"ewc_lambda": "ewc_lambda"}
    assert groups["eval_chrf"]["keys"] == {"eval": "eval_chrf"}
    assert "distance" not in groups


def test_run_without_trainer_state_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"hf-l2mt plot: error: RUN_DIR {tmp_path}: no trainer_state.json in it nor in a checkpoint-* folder" in (
        capsys.readouterr().err)


def test_missing_matplotlib_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'plots need matplotlib: pip install "hf_l2mt\[plots\]"'):
        import_pyplot()
