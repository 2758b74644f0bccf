"""``hf-l2mt interpolate`` and ``hf-l2mt merge``: weights computed by hand, LoRA's scaled delta, the refusals, the
forgetting budget on a known table, and the commands end to end on tiny models."""

import json
import os

import pytest
import torch
from conftest import EOS, PAD, make_args, marian, task_dataset, train_with
from safetensors.torch import load_file, save_file
from tiny_checkpoints import WORDS, save_checkpoint, word_tokenizer
from transformers import AutoModelForSeq2SeqLM, MarianConfig, MarianMTModel

from hf_l2mt.apps.cli import main as cli_main
from hf_l2mt.apps.weights.budget import pick_alpha
from hf_l2mt.apps.weights.interpolate import interpolate
from hf_l2mt.apps.weights.merge import merge
from hf_l2mt.apps.weights.tensors import WeightsError
from hf_l2mt.core import weight_arithmetic

FLOAT32_ULP = 2.0 ** -23  # the spacing of float32 numbers in [1, 2)


def fine_tune(base_dir, target, seed: int = 1, scale: float = 0.1) -> str:
    """``base_dir``'s model with every parameter moved by ``scale``·N(0, 1) and its buffer ``final_logits_bias``
    changed (so that a test can tell a buffer taken from the fine-tune from one interpolated)."""
    model = MarianMTModel.from_pretrained(base_dir)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))
        model.final_logits_bias.fill_(0.25)
    model.save_pretrained(target)
    word_tokenizer(PAD, EOS).save_pretrained(target)
    return str(target)


@pytest.fixture
def pair(tmp_path):
    base = save_checkpoint(tmp_path / "base")
    return base, fine_tune(base, tmp_path / "run")


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.view(torch.int32)


def test_alpha_0_and_1_are_base_and_fine_tune_bit_for_bit_and_half_is_the_mean(pair, tmp_path):
    base, run = pair
    targets = interpolate(run, base, [0.0, 0.5, 1.0], output_dir=str(tmp_path / "out"))
    base_weights, run_weights = load_file(f"{base}/model.safetensors"), load_file(f"{run}/model.safetensors")
    zero, half, one = (load_file(f"{targets[alpha]}/model.safetensors") for alpha in (0.0, 0.5, 1.0))
    assert zero.keys() == run_weights.keys() == base_weights.keys()
    assert "lm_head.weight" not in half, "a tied weight is saved once"
    for name in run_weights:
        if name == "final_logits_bias":
            continue
        assert torch.equal(bits(one[name]), bits(run_weights[name])), name
        assert torch.equal(bits(zero[name]), bits(base_weights[name])), name
        # Both round the exact mean once to float32: float64 holds b/2 + f/2 exactly unless their exponents differ by
        # more than 29, where a second rounding may move the result by one ulp.
        by_hand = (base_weights[name] / 2 + run_weights[name] / 2)
        torch.testing.assert_close(half[name], by_hand, rtol=FLOAT32_ULP, atol=0)
    assert not torch.equal(half["model.shared.weight"], run_weights["model.shared.weight"])
    # The buffer is the fine-tune's, at every alpha.
    for weights in (zero, half, one):
        assert torch.equal(weights["final_logits_bias"], run_weights["final_logits_bias"])
    loaded = MarianMTModel.from_pretrained(targets[0.5])
    assert loaded.lm_head.weight.data_ptr() == loaded.model.shared.weight.data_ptr()
    assert json.loads(open(f"{targets[0.5]}/interpolated_from.json").read())["alpha"] == 0.5
    for name in ("config.json", "generation_config.json", "tokenizer_config.json"):
        assert os.path.isfile(os.path.join(targets[0.5], name)), name


def test_an_l2sp_run_interpolates_between_its_anchor_and_its_end(tmp_path):
    start = marian()  # attention key biases frozen: they must come back unchanged at every alpha
    start.save_pretrained(tmp_path / "base")
    trainer = train_with(start, task_dataset(16), make_args(tmp_path / "run", l2sp_lambda=0.1))
    trainer.save_model()
    targets = interpolate(str(tmp_path / "run"), str(tmp_path / "base"), [0.5, 1.0], output_dir=str(tmp_path / "out"))
    trained = load_file(str(tmp_path / "run" / "model.safetensors"))
    base_weights = load_file(str(tmp_path / "base" / "model.safetensors"))
    assert all(torch.equal(bits(tensor), bits(trained[name])) for name, tensor in
               load_file(f"{targets[1.0]}/model.safetensors").items())
    half = load_file(f"{targets[0.5]}/model.safetensors")
    frozen = [name for name in half if name.endswith("k_proj.bias")]
    assert frozen and all(torch.equal(half[name], base_weights[name]) for name in frozen)
    assert not torch.equal(half["model.shared.weight"], trained["model.shared.weight"])


def test_an_alpha_folder_of_the_same_models_is_kept_and_any_other_refused(pair, tmp_path):
    base, run = pair
    out = str(tmp_path / "out")
    first = interpolate(run, base, [0.5], output_dir=out)[0.5]
    written = os.stat(f"{first}/model.safetensors").st_mtime_ns
    interpolate(run, base, [0.5], output_dir=out)  # the same base, fine-tune and alpha: kept
    assert os.stat(f"{first}/model.safetensors").st_mtime_ns == written
    fine_tune(base, run, seed=7)  # the fine-tune saved again: the folder is no longer its interpolation
    with pytest.raises(WeightsError, match="alpha-0.5' exists; pass --overwrite"):
        interpolate(run, base, [0.5], output_dir=out)


def test_a_tiny_t5_interpolates_and_loads(tmp_path):
    from tiny_checkpoints import save_t5_checkpoint, sentence_pairs

    base = save_t5_checkpoint(tmp_path / "base", sentence_pairs(8, seed=0))
    model = AutoModelForSeq2SeqLM.from_pretrained(base)
    with torch.no_grad():
        model.shared.weight.add_(1.0)
    model.save_pretrained(tmp_path / "run")
    targets = interpolate(str(tmp_path / "run"), base, [0.25], output_dir=str(tmp_path / "out"))
    loaded = AutoModelForSeq2SeqLM.from_pretrained(targets[0.25])
    base_shared = AutoModelForSeq2SeqLM.from_pretrained(base).shared.weight
    # 0.25 added in float64 and rounded once to float32, as the float32 sum by hand is: at most half an ulp of
    # values below 8 apart.
    torch.testing.assert_close(loaded.shared.weight, base_shared + 0.25, rtol=0, atol=2 * FLOAT32_ULP)


def test_a_tiny_decoder_only_model_interpolates_and_loads(tmp_path):
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=24, n_positions=16, n_embd=8, n_layer=1, n_head=2))
    model.save_pretrained(tmp_path / "base")
    with torch.no_grad():
        model.transformer.wte.weight.add_(1.0)
    model.save_pretrained(tmp_path / "run")
    targets = interpolate(str(tmp_path / "run"), str(tmp_path / "base"), [0.5], output_dir=str(tmp_path / "out"))
    loaded = AutoModelForCausalLM.from_pretrained(targets[0.5])
    base_wte = AutoModelForCausalLM.from_pretrained(tmp_path / "base").transformer.wte.weight
    # 0.5 added in float64 and rounded once to float32, as the float32 sum by hand is: at most half an ulp of
    # values below 8 apart.
    torch.testing.assert_close(loaded.transformer.wte.weight, base_wte + 0.5, rtol=0, atol=2 * FLOAT32_ULP)
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()


def test_names_and_shapes_that_differ_are_refused_naming_the_first(pair, tmp_path):
    base, run = pair
    weights = load_file(f"{run}/model.safetensors")
    weights["model.shared.weight"] = weights["model.shared.weight"][:, :8].contiguous()
    save_file(weights, f"{run}/model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsError, match=r"'model.shared.weight' has shape \(24, 8\) in RUN_DIR"):
        interpolate(run, base, [0.5], output_dir=str(tmp_path / "out"))
    del weights["model.shared.weight"], weights["final_logits_bias"]
    save_file(weights, f"{run}/model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsError, match=r"^'final_logits_bias' is in --base .* but not in RUN_DIR"):
        interpolate(run, base, [0.5], output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_lora_run_interpolates_its_scaled_delta(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = save_checkpoint(tmp_path / "base")
    peft_model = get_peft_model(MarianMTModel.from_pretrained(base), LoraConfig(
        r=2, lora_alpha=4, target_modules=["q_proj", "v_proj", "fc1"], task_type="SEQ_2_SEQ_LM"))
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero: give the adapter a delta
                param.copy_(torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(tmp_path / "adapter")
    targets = interpolate(str(tmp_path / "adapter"), base, [0.3], output_dir=str(tmp_path / "out"))
    # By hand: the adapter's scaling s = lora_alpha / r times 0.3, then PEFT's own merge.
    expected_model = PeftModel.from_pretrained(MarianMTModel.from_pretrained(base), tmp_path / "adapter")
    for module in expected_model.modules():
        if hasattr(module, "scaling") and isinstance(module.scaling, dict):
            module.scaling = {key: 0.3 * value for key, value in module.scaling.items()}
    expected = expected_model.merge_and_unload().state_dict()
    got = load_file(f"{targets[0.3]}/model.safetensors")
    moved = 0
    for name, tensor in got.items():
        # Both round W + 0.3·s·B·A to float32 along different paths (ours through the merged W + s·B·A, rounded once
        # more): each path is within 2 ulp of the exact value, so they differ by at most 4 ulp of the largest entry.
        atol = 4 * FLOAT32_ULP * max(1.0, expected[name].abs().max().item())
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=atol)
        moved += not torch.equal(tensor, load_file(f"{base}/model.safetensors")[name])
    # The adapted matrices and no other: the encoder's q_proj, v_proj, fc1 (3), the decoder's self- and cross-attention
    # q_proj, v_proj and its fc1 (5).
    assert moved == 3 + 5


def test_merge_of_one_run_with_weight_1_is_that_run(pair, tmp_path):
    base, run = pair
    run_weights = load_file(f"{run}/model.safetensors")
    for method in ("linear", "task_arithmetic", "ties"):
        target = merge([run], base, str(tmp_path / method), method=method, weights=[1.0], density=1.0)
        merged = load_file(f"{target}/model.safetensors")
        for name, tensor in run_weights.items():
            if method == "linear":
                assert torch.equal(bits(merged[name]), bits(tensor)), name
            else:
                # base + (run - base) in float64 is run exactly unless the exponents differ by more than 29: one ulp.
                torch.testing.assert_close(merged[name], tensor, rtol=FLOAT32_ULP, atol=0)


def test_ties_is_peft_ties():
    from peft.utils.merge_utils import ties as peft_ties

    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    runs = [base + torch.randn(6, 5, generator=generator, dtype=torch.float64) for _ in range(3)]
    weights = [1.0, 0.5, 2.0]
    ours = weight_arithmetic.ties_whole(base, runs, weights, density=0.4)
    theirs = base + peft_ties([run - base for run in runs], torch.tensor(weights, dtype=torch.float64), 0.4)
    # The same float64 operations in the same order: equal bit for bit.
    assert torch.equal(ours, theirs)


def test_task_arithmetic_and_linear_by_hand():
    base, first, second = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.0]), torch.tensor([1.0, 6.0])
    # Small integers and halves: every step is exact in float32 and float64.
    assert torch.equal(weight_arithmetic.task_arithmetic(base, [first, second], [0.5, 1.0]), torch.tensor([2.0, 6.0]))
    assert torch.equal(weight_arithmetic.linear([first, second], [1.0, 3.0]), torch.tensor([1.5, 5.0]))


TABLE = [  # alpha, mean in-domain gain, worst general drop (points)
    {"alpha": 0.2, "in_domain_gain": 2.0, "general_drop": 0.1},
    {"alpha": 0.4, "in_domain_gain": 5.0, "general_drop": 0.6},
    {"alpha": 0.6, "in_domain_gain": 7.0, "general_drop": 1.4},
    {"alpha": 0.8, "in_domain_gain": 9.0, "general_drop": 2.5},
    {"alpha": 1.0, "in_domain_gain": 10.0, "general_drop": 4.0},
]


def test_the_budget_picks_the_most_gain_within_it():
    assert pick_alpha(TABLE, max_general_drop=1.0)["alpha"] == 0.4
    assert pick_alpha(TABLE, max_general_drop=1.4)["alpha"] == 0.6
    assert pick_alpha(TABLE, min_gain_kept=0.9)["alpha"] == 1.0  # 0.8 keeps 9 / 10 too, but 1.0 gains more
    assert pick_alpha(TABLE, min_gain_kept=0.6, max_general_drop=2.0)["alpha"] == 0.6
    missed = pick_alpha(TABLE, min_gain_kept=0.8, max_general_drop=1.0)
    assert missed["alpha"] is None
    assert "alpha 0.4" in missed["why"] or "alpha 0.6" in missed["why"]
    none = pick_alpha(TABLE, max_general_drop=0.05)
    assert none["alpha"] is None and "alpha 0.2" in none["why"] and "by 0.05 points" in none["why"]


def write_set(tmp_path, name, count, seed):
    import random

    rng = random.Random(seed)
    sources = [" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(count)]
    (tmp_path / f"{name}.en").write_text("\n".join(sources) + "\n")
    (tmp_path / f"{name}.de").write_text("\n".join(" ".join(reversed(s.split())) for s in sources) + "\n")
    return f"{name}={tmp_path / name}.en,{tmp_path / name}.de"


def test_the_command_writes_models_scores_and_the_chosen_alpha(pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_L2MT_CACHE", str(tmp_path / "cache"))
    base, run = pair
    argv = ["interpolate", run, "--base", base, "--alpha", "0.5", "--test", write_set(tmp_path, "general", 6, 0),
            write_set(tmp_path, "med", 6, 1), "--max_general_drop", "100", "--bootstrap_resamples", "40",
            "--num_beams", "1", "--max_new_tokens", "8"]
    cli_main(argv)
    out = capsys.readouterr().out
    root = os.path.join(run, "interpolated")
    assert f"alpha 0.5: {root}/alpha-0.5" in out
    table = out[out.index("chrF of each alpha"):]
    assert [line.split()[0] for line in table.splitlines()[2:5]] == ["0", "0.5", "1"]
    scores = json.loads(open(os.path.join(root, "interpolation_scores.json")).read())
    assert [row["alpha"] for row in scores["rows"]] == [0.0, 0.5, 1.0]
    # Any drop is within a budget of 100 points, so the alpha with the most gain is chosen.
    best = max(scores["rows"], key=lambda row: (row["in_domain_gain"], -row["alpha"]))
    chosen = json.loads(open(os.path.join(root, "chosen.json")).read())
    assert chosen["alpha"] == best["alpha"] and f"chosen: {chosen['model']}" in out
    assert f"every alpha: {root}/interpolation_front.png" in out
    assert open(os.path.join(root, "interpolation_front.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    model = AutoModelForSeq2SeqLM.from_pretrained(os.path.join(root, "alpha-0.5"))
    assert model.generate(torch.tensor([[5, 6, EOS]]), max_new_tokens=4).shape[0] == 1


def test_the_run_s_own_held_out_sets_are_scored_without_test_flags(pair, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_L2MT_CACHE", str(tmp_path / "cache"))
    base, run = pair
    sets = {}
    for name, domain, seed in (("news", "general", 0), ("med", "in_domain", 1)):
        sources = [" ".join(WORDS[seed + i: seed + i + 3]) for i in range(5)]
        sets[name] = {"domain": domain, "sentences": {"source": sources, "reference": sources}}
    with open(os.path.join(run, "forgetting_report.json"), "w") as handle:
        json.dump({"sets": sets}, handle)
    cli_main(["interpolate", run, "--base", base, "--alpha", "0.5", "--min_gain_kept", "0.5",
              "--bootstrap_resamples", "40", "--num_beams", "1", "--max_new_tokens", "6"])
    out = capsys.readouterr().out
    assert "news (general)" in out and "med (in-domain)" in out
    scores = json.loads(open(os.path.join(run, "interpolated", "interpolation_scores.json")).read())
    assert scores["report"]["general_sets"] == ["news"]
    budget = scores["budget"]
    said = f"\nchosen: {budget['model']}: " if budget["alpha"] is not None else "\nnone chosen: "
    assert said + budget["why"] in out


def test_the_merge_command(pair, tmp_path, capsys):
    base, run = pair
    other = fine_tune(base, tmp_path / "other", seed=2)
    cli_main(["merge", run, other, "--base", base, "--method", "ties", "--output_dir", str(tmp_path / "merged")])
    assert "merged 2 run(s) with ties" in capsys.readouterr().out
    provenance = json.loads((tmp_path / "merged" / "merged_from.json").read_text())
    assert provenance["density"] == 0.2 and provenance["weights"] == [1.0, 1.0]
    assert MarianMTModel.from_pretrained(tmp_path / "merged").config.d_model == MarianConfig.from_pretrained(
        base).d_model


def test_written_safetensors_load_back_and_chunks_change_nothing(tmp_path, monkeypatch):
    from hf_l2mt.apps.weights import tensors as weight_io

    made = {"b": torch.randn(3, 4).to(torch.bfloat16), "f": torch.randn(5), "i": torch.arange(6).reshape(2, 3),
            "s": torch.tensor(2.5), "m": torch.tensor([True, False])}
    layout = [(name, weight_io.DTYPE_NAMES[t.dtype], tuple(t.shape)) for name, t in made.items()]
    weight_io.write_safetensors(str(tmp_path / "w.safetensors"), layout, made.__getitem__, {"format": "pt"})
    loaded = load_file(str(tmp_path / "w.safetensors"))
    assert loaded.keys() == made.keys() and all(torch.equal(loaded[name], made[name]) for name in made)
    monkeypatch.setattr(weight_io, "CHUNK", 7)  # 7 does not divide 40: the last chunk is short
    base, run = torch.randn(5, 8), torch.randn(5, 8)
    chunked = weight_io.elementwise(lambda b, r: weight_arithmetic.interpolate(b, r, 0.3), [base, run])
    assert torch.equal(chunked, weight_arithmetic.interpolate(base, run, 0.3))


def test_ties_in_chunks_is_ties_on_whole_tensors(pair, tmp_path, monkeypatch):
    from hf_l2mt.apps.weights import tensors as weight_io

    base, run = pair
    other = fine_tune(base, tmp_path / "other", seed=2)
    monkeypatch.setattr(weight_io, "CHUNK", 7)  # every tensor of the tiny Marian spans several chunks
    target = merge([run, other], base, str(tmp_path / "ties"), method="ties", weights=[1.0, 0.5], density=0.3)
    merged = load_file(f"{target}/model.safetensors")
    weights = [load_file(f"{path}/model.safetensors") for path in (base, run, other)]
    for name in merged:
        if name == "final_logits_bias":  # a buffer: the first run's
            assert torch.equal(merged[name], weights[1][name])
            continue
        expected = weight_arithmetic.ties_whole(weights[0][name], [weights[1][name], weights[2][name]], [1.0, 0.5], 0.3)
        assert torch.equal(merged[name], expected), name


def test_the_memory_benchmark_reports_both_commands(tmp_path):
    from benchmarks import interpolation_memory

    results = interpolation_memory.main(["--vocab_size", "30", "--d_model", "16", "--layers", "1", "--ffn_dim", "32",
                                         "--json", str(tmp_path / "memory.json")])
    assert json.loads((tmp_path / "memory.json").read_text()) == results
    for command in ("interpolate", "merge"):
        assert {"peak_resident_bytes", "peak_anonymous_bytes"} <= results[command].keys()
    assert results["model_bytes"] > 0
