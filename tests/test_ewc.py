"""EWC: the Fisher estimate, the `hf-l2mt fisher` command, Fisher-weighted L2-SP in the update, resume."""

import pytest
import torch
from safetensors import safe_open
from transformers import MarianMTModel

from conftest import (PadCollator, assert_same_params, make_args, marian, params_of, reordered_adamw_tolerance,
                      logged_sum_rtol, reordered_tolerance, task_dataset, tiny_marian, train_with)
from hf_l2mt.apps.cli import main
from hf_l2mt.core.fisher import FISHER_FILE, FisherError, estimate_fisher, save_fisher
from hf_l2mt.core.loss import token_cross_entropy
from regularizer_reference import LR, adamw, reference_run, sgd
from tiny_checkpoints import save_checkpoint, sentence_pairs


def trainable(model) -> dict:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def write_fisher(path, model, make=lambda p: torch.rand_like(p) * 3 + 0.1, **overrides) -> str:
    torch.manual_seed(1)
    fisher = {n: make(p.detach()) for n, p in trainable(model).items()}
    return save_fisher({**fisher, **overrides}, str(path))


def test_estimate_fisher_is_the_mean_of_squared_batch_gradients():
    model = tiny_marian()
    batches = [PadCollator()(task_pairs) for task_pairs in (list(task_dataset(3, seed=1)), list(task_dataset(2, seed=2)))]
    before = params_of(model)
    expected = {n: torch.zeros_like(p) for n, p in trainable(model).items()}
    for batch in batches:
        model.zero_grad()
        labels = batch["labels"]
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels)).logits
        token_cross_entropy(logits, labels).backward()
        for n, p in trainable(model).items():
            expected[n] += p.grad**2 / len(batches)
    model.train()

    fisher = estimate_fisher(model, batches)

    assert fisher.keys() == expected.keys()
    assert_same_params(fisher, expected)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert_same_params(params_of(model), before)
    assert float(fisher["model.shared.weight"].sum()) > 0


def test_fisher_command_writes_safetensors_with_metadata(tmp_path):
    model_dir = save_checkpoint(tmp_path / "base", "marian")
    pairs = sentence_pairs(7, seed=3)
    (tmp_path / "general.en").write_text("".join(f"{s}\n" for s, _ in pairs), encoding="utf-8")
    (tmp_path / "general.de").write_text("".join(f"{t}\n" for _, t in pairs), encoding="utf-8")
    output = tmp_path / "fisher.safetensors"

    main(["fisher", "--model_name_or_path", model_dir, "--source_file", str(tmp_path / "general.en"),
          "--target_file", str(tmp_path / "general.de"), "--output", str(output), "--batch_size", "3",
          "--max_examples", "5", "--device", "cpu", "--max_source_length", "16", "--max_target_length", "16"])

    with safe_open(str(output), framework="pt") as handle:
        metadata, names = handle.metadata(), set(handle.keys())
        shared = handle.get_tensor("model.shared.weight")
    assert metadata["model"] == model_dir and metadata["examples"] == "5" and metadata["batch_size"] == "3"
    assert names == set(trainable(MarianMTModel.from_pretrained(model_dir)))
    assert (shared >= 0).all() and shared.sum() > 0


def test_fisher_command_refuses_files_of_different_lengths(tmp_path, capsys):
    (tmp_path / "a.en").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "a.de").write_text("eins\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["fisher", "--model_name_or_path", str(tmp_path), "--source_file", str(tmp_path / "a.en"),
              "--target_file", str(tmp_path / "a.de"), "--output", str(tmp_path / "f.safetensors")])
    assert exit_info.value.code == 2
    assert "a.en has 2 lines and --target_file" in capsys.readouterr().err
    assert not (tmp_path / "f.safetensors").exists()


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_constant_fisher_normalised_by_its_mean_is_plain_l2sp(tmp_path, mode):
    data, lam = task_dataset(4), 0.5 if mode == "coupled" else 2.0
    path = write_fisher(tmp_path / "f.safetensors", marian(), make=lambda p: torch.full_like(p, 3.0))
    plain, ewc = marian(), marian()
    train_with(plain, data, make_args(tmp_path / "plain", l2sp_lambda=lam, l2sp_mode=mode))
    train_with(ewc, data, make_args(tmp_path / "ewc", l2sp_lambda=lam, l2sp_mode=mode, l2sp_fisher_path=path))
    # The same penalty computed two ways: the Fisher weight (exactly 1 after normalising) multiplies and the
    # weighted terms add in another order, about 3 roundings per gradient element over make_args' 3 steps.
    assert_same_params(params_of(ewc), params_of(plain), **reordered_adamw_tolerance(3, terms=3))


@pytest.mark.parametrize("optim, make_optimizer", [("sgd", sgd), ("adamw_torch", adamw)])
def test_coupled_ewc_equals_the_weighted_penalty_in_the_loss(tmp_path, optim, make_optimizer):
    data, lam = task_dataset(4), 0.5
    path = write_fisher(tmp_path / "f.safetensors", marian())
    with safe_open(path, framework="pt") as handle:
        fisher = {n: handle.get_tensor(n) for n in handle.keys()}

    def penalty(t, logits, batch, named, anchor, base):
        return lam / 2 * sum((fisher[n] * (p - anchor[n]) ** 2).sum() for n, p in named)

    expected = reference_run(marian(), data, 3, make_optimizer, extra_loss=penalty)
    model = marian()
    trainer = train_with(model, data, make_args(tmp_path / "run", optim=optim, l2sp_lambda=lam,
                                                l2sp_fisher_path=path, l2sp_fisher_normalize="none"))
    # The penalty's gradient is computed and added elsewhere in the reference loop: about 3 roundings.
    assert_same_params(params_of(model), expected, **reordered_tolerance(optim, 3, terms=3))
    start = params_of(marian())
    weighted = sum(float((fisher[n] * (p.detach() - start[n]) ** 2).sum()) for n, p in trainable(model).items())
    # marian()'s 40 trainable tensors, the largest of 512 elements; a difference, a square and a weight per term.
    rel = logged_sum_rtol(tensors=40, largest=512, roundings_per_term=3)
    assert trainer.state.log_history[-2]["l2sp_penalty"] == pytest.approx(lam / 2 * weighted, rel=rel)


def test_decoupled_ewc_moves_each_coordinate_by_a_clamped_fraction(tmp_path):
    data, lam = task_dataset(4), 20.0
    # Some coordinates get lr·λ·F > 1: they land on the anchor instead of overshooting it.
    path = write_fisher(tmp_path / "f.safetensors", marian(), make=lambda p: torch.rand_like(p) * 8)
    with safe_open(path, framework="pt") as handle:
        fisher = {n: handle.get_tensor(n) for n in handle.keys()}
    assert max(float(f.max()) for f in fisher.values()) * LR * lam > 1

    def move(t, named, anchor):
        for n, p in named:
            p.sub_((LR * lam * fisher[n]).clamp(max=1) * (p - anchor[n]))

    expected = reference_run(marian(), data, 3, adamw, before_step=move)
    model = marian()
    train_with(model, data, make_args(tmp_path / "run", l2sp_lambda=lam, l2sp_mode="decoupled",
                                      l2sp_fisher_path=path, l2sp_fisher_normalize="none"))
    # The move to the anchor is computed elsewhere in the reference loop: about 3 roundings per step.
    assert_same_params(params_of(model), expected, **reordered_adamw_tolerance(3, terms=3))


def test_fisher_path_without_l2sp_or_file_is_refused(tmp_path):
    path = write_fisher(tmp_path / "f.safetensors", marian())
    with pytest.raises(ValueError, match="l2sp_fisher_path: .* L2-SP is off"):
        make_args(tmp_path, l2sp_fisher_path=path)
    with pytest.raises(ValueError, match="l2sp_fisher_path: .*missing.safetensors' does not exist.*hf-l2mt fisher"):
        make_args(tmp_path, l2sp_lambda=1.0, l2sp_fisher_path=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="l2sp_fisher_normalize: got 'max'; accepted: 'mean', 'none'"):
        make_args(tmp_path, l2sp_lambda=1.0, l2sp_fisher_path=path, l2sp_fisher_normalize="max")


@pytest.mark.parametrize("overrides, message", [
    ({"model.shared.weight": torch.ones(3, 3)}, r"Fisher of 'model.shared.weight' has shape \(3, 3\)"),
    ({"encoder.not_a_parameter": torch.ones(2)}, r"Fisher entries name no parameter of the model, e.g. 'encoder.not_a_parameter'"),
    ({"model.encoder.layers.0.fc1.bias": -torch.ones(32)}, "'model.encoder.layers.0.fc1.bias' has negative or non"),
])
def test_fisher_that_does_not_fit_the_model_is_refused(tmp_path, overrides, message):
    path = write_fisher(tmp_path / "f.safetensors", marian(), **overrides)
    args = make_args(tmp_path, l2sp_lambda=1.0, l2sp_fisher_path=path)
    with pytest.raises(FisherError, match=rf"f.safetensors: .*{message}"):
        train_with(marian(), task_dataset(4), args)


def test_fisher_without_an_entry_for_a_regularized_parameter_is_refused(tmp_path):
    fisher = {n: torch.ones_like(p) for n, p in trainable(marian()).items() if n != "model.shared.weight"}
    path = save_fisher(fisher, str(tmp_path / "f.safetensors"))
    with pytest.raises(FisherError, match="no Fisher for 1 regularized parameter.*'model.shared.weight'"):
        train_with(marian(), task_dataset(4), make_args(tmp_path, l2sp_lambda=1.0, l2sp_fisher_path=path))


def test_resumed_ewc_run_equals_uninterrupted_run_even_if_the_fisher_file_changes(tmp_path):
    data = task_dataset(16, seed=5)
    path = write_fisher(tmp_path / "f.safetensors", tiny_marian())
    settings = dict(max_steps=6, save_strategy="steps", save_steps=3, l2sp_lambda=0.5, l2sp_fisher_path=path,
                    lr_scheduler_type="linear")
    uninterrupted = tiny_marian()
    train_with(uninterrupted, data, make_args(tmp_path / "full", **settings))
    train_with(tiny_marian(), data, make_args(tmp_path / "run", **settings))
    checkpoint = tmp_path / "run" / "checkpoint-3"
    assert (checkpoint / FISHER_FILE).is_file()
    write_fisher(path, tiny_marian(), make=lambda p: torch.ones_like(p))  # the run uses its checkpoint's copy

    model = tiny_marian()
    train_with(model, data, make_args(tmp_path / "run", **settings), resume_from_checkpoint=str(checkpoint))
    assert_same_params(params_of(model), params_of(uninterrupted))

    (checkpoint / FISHER_FILE).unlink()
    with pytest.raises(FisherError, match=f"checkpoint-3.*has no {FISHER_FILE}"):
        train_with(tiny_marian(), data, make_args(tmp_path / "run", **settings), resume_from_checkpoint=str(checkpoint))
