"""Smoke tests of the benchmark scripts: each ``main([...])`` runs at toy size and reports what it should.

They check that the scripts run and that their output has the expected rows and keys (and the
numbers that do not depend on speed), never how fast anything is.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from benchmarks import (
    domain_adaptation,
    eval_speed,
    plot_forgetting,
    regularizer_overhead,
    source_check,
    startup_time,
    throughput,
)
from benchmarks.pretrain_base import pretrain_base, read_progress
from hf_l2mt import L2MTTrainer, L2MTTrainingArguments
from hf_l2mt.data import preprocess_pairs
from hf_l2mt.apps.demo.spm_tokenizer import train_marian_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = [
    ("the house", "das Haus"), ("a red car", "ein rotes Auto"), ("the old man and the sea", "der alte Mann und das Meer"),
    ("good morning", "guten Morgen"), ("the cat sleeps on the warm roof", "die Katze schläft auf dem warmen Dach"),
    ("water", "Wasser"), ("we read a long book in the evening", "wir lesen am Abend ein langes Buch"),
    ("bread", "Brot"), ("the train is late today", "der Zug ist heute spät"), ("thank you", "danke"),
    ("my sister lives in a small town near the river", "meine Schwester wohnt in einer kleinen Stadt am Fluss"),
    ("the dog", "der Hund"), ("open the window please", "mach bitte das Fenster auf"), ("tree", "Baum"),
    ("the children play in the garden", "die Kinder spielen im Garten"), ("milk", "Milch"),
]
DING_LINES = [
    "# toy Ding file",
    "Haus {n} :: house", "Auto {n} :: car", "Baum {m} :: tree", "Hund {m} :: dog", "Katze {f} :: cat",
    "Brot {n} :: bread", "Wasser {n} :: water", "Milch {f} :: milk", "Garten {m} :: garden", "Fenster {n} :: window",
    "Zug {m} :: train", "Buch {n} :: book", "Stadt {f} :: town", "Fluss {m} :: river", "Dach {n} :: roof",
    "Blinddarm {m} [anat.] [med.] :: appendix", "Fieber {n} [med.] :: fever", "Husten {m} [med.] :: cough",
    "Wunde {f} [med.] :: wound", "Salbe {f} [med.] :: ointment", "Pille {f} [med.] :: pill",
    "Arzt {m} [med.] :: doctor", "Narbe {f} [med.] :: scar", "Puls {m} [med.] :: pulse",
    "Rechner {m} [comp.] :: computer",
]


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("sample"))
    sources, targets = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    return throughput.write_sample(directory, sources, targets, vocab=80, max_length=32, description="toy pairs")


def test_throughput_runs_both_variants_over_the_same_target_tokens(sample_dir, tmp_path):
    summary = throughput.main(["--tokenized_sample", sample_dir, "--model", "tiny", "--vocab_size", "0", "--batch_size", "4",
                               "--steps", "3", "--rounds", "2", "--skip_memory", "--json", str(tmp_path / "t.json")])
    with open(os.path.join(sample_dir, "sample.json"), encoding="utf-8") as handle:
        target_ids = json.load(handle)["target_ids"][:12]
    assert summary["target_tokens_per_epoch"] == sum(len(ids) for ids in target_ids)
    assert set(summary["variants"]) == {"baseline", "ours"}
    for row in summary["variants"].values():
        assert len(row["tokens_per_s_per_round"]) == 2 and row["tokens_per_s"] > 0
        assert 0 <= row["target_padding"] < 1 and 0 <= row["source_padding"] < 1
    assert summary["ratio"] == pytest.approx(summary["variants"]["ours"]["tokens_per_s"]
                                             / summary["variants"]["baseline"]["tokens_per_s"])
    assert json.loads((tmp_path / "t.json").read_text())["variants"]["ours"]["ratio"] == pytest.approx(summary["ratio"])


def test_entries_joined_to_sentence_length_stay_parallel_and_in_order():
    sources = [f"word{i} " * (1 + i % 3) for i in range(3000)]
    sources = [s.strip() for s in sources]
    targets = [f"Wort{i}" for i in range(3000)]
    joined_sources, joined_targets = throughput.join_to_sentences(sources, targets, 100, seed=3)
    assert len(joined_sources) == len(joined_targets) == 100
    # consecutive entries, each used once, the same ones on both sides
    flat_sources = [part for pair in joined_sources for part in pair.split(", ")]
    flat_targets = [part for pair in joined_targets for part in pair.split(", ")]
    assert flat_sources == sources[:len(flat_sources)] and flat_targets == targets[:len(flat_targets)]
    words = sorted(len(pair.split()) for pair in joined_sources)
    assert words[0] >= throughput.SENTENCE_WORDS["low"] and words[-1] <= throughput.SENTENCE_WORDS["high"] + 2
    assert 14 <= words[len(words) // 2] <= 28  # log-normal around a median of 20 words
    assert throughput.join_to_sentences(sources, targets, 100, seed=3) == (joined_sources, joined_targets)
    with pytest.raises(ValueError, match="make only"):
        throughput.join_to_sentences(sources[:50], targets[:50], 100)


def test_update_profile_times_every_phase_without_changing_the_update(tmp_path, capsys):
    from benchmarks import update_profile

    opts = update_profile.parse_args(["--model", "tiny", "--vocab_size", "300", "--small_vocab_size", "60",
                                      "--updates", "3", "--batch_size", "2", "--source_length", "4"])
    weights = {}
    for timed_phases in (False, True):
        model = update_profile.make_model(opts, opts.small_vocab_size)
        args = L2MTTrainingArguments(output_dir=str(tmp_path / str(timed_phases)), per_device_train_batch_size=2,
                                     max_steps=3, save_strategy="no", report_to=[], use_cpu=True, l2sp_lambda=0.1,
                                     remove_unused_columns=False)
        trainer = L2MTTrainer(model=model, args=args, train_dataset=update_profile.batch_rows(opts, 60),
                              data_collator=update_profile.collate)
        if timed_phases:
            clock = update_profile.PhaseClock()
            trainer.add_callback(clock)
            update_profile.instrument(trainer, clock)
        trainer.train()
        weights[timed_phases] = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert all(torch.equal(weights[True][n], weights[False][n]) for n in weights[False])
    assert len(clock.updates) == 3
    assert all(update[phase] > 0 for update in clock.updates for phase in ("forward", "backward", "optimizer"))
    result = update_profile.main(["--model", "tiny", "--vocab_size", "300", "--small_vocab_size", "60", "--rounds", "2",
                                  "--updates", "2", "--batch_size", "2", "--source_length", "4", "--target_length", "3"])
    assert {name: len(rounds) for name, rounds in result["per_round"].items()} == {
        "large": 2, "large_l2sp": 2, "small": 2, "small_l2sp": 2}
    assert "L2-SP on / off, paired per round" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        update_profile.parse_args(["--small_vocab_size", "60000"])


def test_update_profile_pairs_compiled_with_eager_trainers_per_round(monkeypatch, capsys):
    from benchmarks import update_profile

    totals = {"large": 2.0, "large_l2sp": 2.2, "small": 1.0, "small_l2sp": 1.1, "large_compiled": 1.5,
              "large_l2sp_compiled": 1.65}
    seen = []

    def fake_round(name, opts, output_dir):
        seen.append(name)
        return {"forward": 0.0, "backward": 0.0, "optimizer": 0.0, "other": totals[name], "total": totals[name]}

    monkeypatch.setattr(update_profile, "one_round", fake_round)
    result = update_profile.main(["--rounds", "2", "--torch_compile"])
    assert seen[:6] == list(totals) and seen[6:] == list(totals)[1:] + ["large"]  # rotated in round 2
    assert result["ratios"]["compiled"] == pytest.approx(0.75)
    assert result["ratios"]["compiled_l2sp"] == pytest.approx(0.75)
    assert result["ratios"]["l2sp_large"] == pytest.approx(1.1)
    assert "torch_compile / eager, paired per round: 0.750x" in capsys.readouterr().out


def test_throughput_memory_process_reports_its_high_water_mark(sample_dir, capsys):
    throughput.main(["--_memory_only", "ours", "--tokenized_sample", sample_dir, "--model", "tiny", "--vocab_size", "0",
                     "--batch_size", "4", "--steps", "2"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["peak_rss_bytes"] > 10 * 2**20


def test_throughput_refuses_a_sample_too_small_for_the_epoch(sample_dir):
    with pytest.raises(ValueError, match="holds 16"):
        throughput.main(["--tokenized_sample", sample_dir, "--model", "tiny", "--batch_size", "8", "--steps", "3",
                         "--skip_memory"])


def test_throughput_from_a_sample_needs_no_datasets_package(sample_dir):
    """The GPU machine has no ``datasets``: a None entry in sys.modules makes every import of it fail."""
    code = ("import sys; sys.modules['datasets'] = None; from benchmarks import throughput; "
            f"throughput.main(['--tokenized_sample', {sample_dir!r}, '--model', 'tiny', '--vocab_size', '0', "
            "'--batch_size', '4', '--steps', '2', '--rounds', '1', '--skip_memory', '--threads', '1'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ours / baseline:" in result.stdout


def test_eval_speed_compares_identical_hypotheses(sample_dir, tmp_path):
    summary = eval_speed.main(["--tokenized_sample", sample_dir, "--model", "tiny", "--sentences", "12",
                               "--batch_size", "4", "--rounds", "1", "--max_new_tokens", "6",
                               "--json", str(tmp_path / "e.json")])
    assert summary["sentences"] == 12 and summary["differing_hypotheses"] == 0
    assert summary["variants"]["baseline"]["bleu"] == summary["variants"]["ours"]["bleu"]
    assert summary["speedup"] == pytest.approx(summary["variants"]["baseline"]["median_s"]
                                               / summary["variants"]["ours"]["median_s"])
    assert json.loads((tmp_path / "e.json").read_text())["bleu_signature"].startswith("nrefs:1")


def test_summary_checks_the_goal_against_plain_fine_tuning():
    def scores(domain, general):
        return {"domain": {"exact_match": domain, "chrf": 0.0, "bleu": 0.0},
                "general": {"exact_match": general, "chrf": 0.0, "bleu": 0.0}}

    base = scores(10.0, 80.0)
    summary = domain_adaptation.summarize(base, {
        "plain": [scores(100.0, 40.0), scores(100.0, 40.0)],   # loses 40 general points
        "keeps": [scores(96.0, 74.0), scores(96.0, 76.0)],     # loses 5 (12.5 %), in-domain 96 %
        "too_weak": [scores(99.0, 60.0), scores(99.0, 60.0)],  # loses 20 (50 %)
        "too_strong": [scores(90.0, 80.0), scores(90.0, 80.0)],  # keeps all, in-domain 90 %
    }, "exact_match")
    assert summary["keeps"]["general_exact_match"] == pytest.approx((75.0, 2 ** 0.5))
    assert summary["keeps"]["general_loss_share"] == pytest.approx(0.125)
    assert summary["keeps"]["domain_vs_plain"] == pytest.approx(0.96)
    assert [name for name, row in summary.items() if row["meets_goal"]] == ["keeps"]


def test_training_state_counts_weights_gradients_moments_and_anchor(tmp_path):
    from transformers import MarianConfig, MarianMTModel
    from hf_l2mt import L2MTTrainer, L2MTTrainingArguments

    config = MarianConfig(vocab_size=40, d_model=8, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, pad_token_id=0,
                          decoder_start_token_id=0, eos_token_id=1, max_position_embeddings=16)
    states = {}
    for name, extra in (("plain", {}), ("l2sp", {"l2sp_lambda": 0.1})):
        model = MarianMTModel(config)
        args = L2MTTrainingArguments(output_dir=str(tmp_path / name), use_cpu=True, report_to=[], max_steps=1,
                                     per_device_train_batch_size=2, save_strategy="no", remove_unused_columns=False,
                                     **extra)
        trainer = L2MTTrainer(model=model, args=args, train_dataset=[{"input_ids": [5, 6, 1], "labels": [7, 1]}] * 2,
                              data_collator=lambda rows: {key: torch.tensor([row[key] for row in rows]) for key in rows[0]})
        trainer.train()
        states[name] = domain_adaptation.training_state_mib(trainer)
    weights = sum(p.numel() * 4 for p in model.parameters()) / 2**20
    trainable = sum(p.numel() * 4 for p in model.parameters() if p.requires_grad) / 2**20  # not the sinusoidal tables
    step_counters = sum(4 for p in model.parameters() if p.requires_grad) / 2**20  # Adam's float32 step, one a tensor
    # All weights, then gradients and Adam's two moments of the trainable ones, plus a step counter each. Every
    # size is a whole number of bytes over 2**20, far below 2**53 bytes: float64 holds these sums and differences
    # exactly, so they are equal, and a missing step counter (4 bytes of 7,424 here) would show.
    assert states["plain"] == weights + 3 * trainable + step_counters
    assert states["l2sp"] - states["plain"] == trainable  # the anchor


def test_weight_snapshots_average_the_last_updates():
    from types import SimpleNamespace

    model = torch.nn.Linear(2, 1, bias=False)
    snapshots = domain_adaptation.WeightSnapshots(last=2, every=2)
    for step in range(1, 7):
        with torch.no_grad():
            model.weight.fill_(float(step))
        snapshots.on_step_end(None, SimpleNamespace(global_step=step), None, model=model)
    # kept: the weights after updates 4 and 6 (2 and 1 dropped, 3 and 5 not taken)
    assert [float(s["weight"][0, 0]) for s in snapshots.snapshots] == [4.0, 6.0]


def test_pretraining_resumes_and_refuses_other_settings(tmp_path):
    from benchmarks.forgetting_tasks import NUMBERS_SHAPE, marian_config
    from datasets import Dataset

    tokenizer = train_marian_tokenizer([t for p in PAIRS for t in p], str(tmp_path / "tok"), vocab_size=80)
    config = marian_config(NUMBERS_SHAPE, tokenizer)
    pairs = Dataset.from_dict({"source": [p[0] for p in PAIRS], "target": [p[1] for p in PAIRS]})
    train = preprocess_pairs(pairs, tokenizer, "en", "de", 32, 32, model_config=config)
    cache = str(tmp_path / "cache")
    pretrain_base(cache, config, tokenizer, train, max_steps=2, batch_size=4)
    assert read_progress(cache)["steps"] == 2
    pretrain_base(cache, config, tokenizer, train, max_steps=4, batch_size=4)
    assert read_progress(cache)["steps"] == 4
    # save_total_limit=1 keeps the newest checkpoint and the one this run resumed from (docs/resume.md).
    assert sorted(os.listdir(os.path.join(cache, "trainer"))) == ["checkpoint-2", "checkpoint-4"]
    assert os.path.isfile(os.path.join(cache, "base", "config.json"))
    with pytest.raises(ValueError, match="other settings"):
        pretrain_base(cache, config, tokenizer, train, max_steps=6, batch_size=8)


def _study_args(tmp_path, *extra):
    return [*extra, "--heldout", "3", "--pretrain_steps", "3", "--pretrain_batch_size", "8", "--steps", "2",
            "--batch_size", "4", "--seeds", "2", "--lambdas", "0.1", "--sigmoid_lambdas", "0.1", "--decoupled_lambdas", "1", "--ewc_lambdas", "1",
            "--fisher_examples", "8", "--kl_lambdas", "1", "--l1_lambdas", "0.1", "--lora_lambdas", "1", "--lora_ranks", "2", "--lora_l2sp_rank", "2",
            "--average_every", "1", "--average_last", "2", "--average_l2sp_lambdas", "0.1", "--vocab_size", "60",
            "--max_length", "24", "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "out")]


EXPECTED_VARIANTS = ["plain", "weight_decay 0.01", "l2sp 0.1", "l2sp_sigmoid 0.1", "l2sp_decoupled 1", "ewc 1", "kl 1",
                     "l1_anchor 0.1", "mixed 0.2", "lora r2", "lora_l2sp r2 1", "average", "average l2sp 0.1"]


def _check_outputs(result, out, seeds):
    assert list(result["summary"]) == EXPECTED_VARIANTS
    assert all(len(result["runs"][name]) == seeds for name in EXPECTED_VARIANTS)
    table = (out / "results.md").read_text().splitlines()
    assert [line.split(" | ")[0].lstrip("| ") for line in table[2:3 + len(EXPECTED_VARIANTS)]] == ["base (before fine-tuning)", *EXPECTED_VARIANTS]
    assert json.loads((out / "results.json").read_text())["summary"].keys() == result["summary"].keys()
    assert (out / "forgetting.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "runs.jsonl").read_text().splitlines()) == 1 + seeds * len(EXPECTED_VARIANTS)
    # every run's forgetting report scores exactly what runs.jsonl scored, against the base's translations
    runs = {(r["variant"], r["seed"]): r for r in map(json.loads, (out / "runs.jsonl").read_text().splitlines())}
    for name in EXPECTED_VARIANTS:
        for seed in range(seeds):
            report = json.loads((out / "reports" / f"{name.replace(' ', '_')}_seed{seed}.json").read_text())
            for split, report_set in (("domain", "in_domain"), ("general", "general")):
                scores = report["sets"][report_set]["scores"]
                assert scores["run"]["exact_match"] == pytest.approx(runs[(name, seed)]["scores"][split]["exact_match"])
                assert scores["base"]["chrf"] == pytest.approx(runs[("base", 0)]["scores"][split]["chrf"])
            assert report["compared"] == ([] if name == "plain" else ["plain"])
            table = (out / "reports" / f"{name.replace(' ', '_')}_seed{seed}.txt").read_text()
            assert table.startswith("in_domain (in-domain, 3 sentences)")
    assert set(result["reports"]) == set(result["costs"]) == set(EXPECTED_VARIANTS)
    lora_params = result["costs"]["lora r2"]["trainable_parameters"]
    assert 0 < lora_params < result["costs"]["plain"]["trainable_parameters"]


def test_numbers_study_writes_table_json_and_plot(tmp_path):
    args = _study_args(tmp_path, "--task", "numbers", "--general_size", "60", "--domain_size", "20")
    result = domain_adaptation.main(args)
    _check_outputs(result, tmp_path / "out", seeds=2)
    stale = tmp_path / "out" / "reports" / "plain_seed0.json"
    report = json.loads(stale.read_text())
    stale.write_text(json.dumps({**report, "study_key": "another base", "sets": {}}))  # a report of other runs
    again = domain_adaptation.main(args)  # every run is in runs.jsonl: nothing is trained twice
    assert again["summary"] == result["summary"]
    assert again["reports"] == result["reports"]  # the stale report was made again from runs.jsonl
    assert json.loads(stale.read_text())["sets"] == report["sets"]
    assert len((tmp_path / "out" / "runs.jsonl").read_text().splitlines()) == 1 + 2 * len(EXPECTED_VARIANTS)


def test_sharded_study_equals_one_process(tmp_path):
    common = ["--task", "numbers", "--general_size", "60", "--domain_size", "20", "--families", "ewc", "mixed"]
    whole = domain_adaptation.main(_study_args(tmp_path, *common))
    sharded = tmp_path / "sharded"  # same cached base, another output folder
    # shard 1 has no base scores (shard 0 writes them): it stops without a table
    assert domain_adaptation.main([*_study_args(tmp_path, *common, "--shard", "1/2"), "--output_dir", str(sharded)]) is None
    assert not (sharded / "results.md").exists()
    together = domain_adaptation.main([*_study_args(tmp_path, *common, "--shard", "0/2"), "--output_dir", str(sharded)])
    assert together["summary"] == whole["summary"]
    assert (sharded / "results.md").exists()
    runs = [json.loads(line) for line in (sharded / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["variant"], r["seed"]) for r in runs) == sorted(
        [("base", 0)] + [(v, s) for v in ("plain", "ewc 1", "mixed 0.2") for s in (0, 1)])


def test_shards_train_in_folders_of_their_own(tmp_path):
    # shards run at the same time, and a folder holds one training run's lock (hf_l2mt.core.run_lock)
    folders = {domain_adaptation.trainer_dir(domain_adaptation.parse_args(["--shard", shard, "--output_dir", "x"]))
               for shard in ("0/2", "1/2", "0/1")}
    assert len(folders) == 3


@pytest.mark.parametrize("flag, message", [
    (["--shard", "2/2"], "--shard '2/2': accepted: I/N with 0 <= I < N"),
    (["--shard", "a"], "--shard 'a': accepted: I/N with 0 <= I < N"),
])
def test_bad_shard_is_refused(tmp_path, capsys, flag, message):
    with pytest.raises(SystemExit):
        domain_adaptation.parse_args(["--task", "numbers", *flag])
    assert message in capsys.readouterr().err


def test_ding_study_on_a_toy_dictionary(tmp_path):
    ding = tmp_path / "de-en"
    ding.write_text("\n".join(DING_LINES) + "\n", encoding="utf-8")
    args = _study_args(tmp_path, "--task", "ding", "--ding_path", str(ding), "--tag", "med")
    result = domain_adaptation.main([*args, "--seeds", "1"])
    _check_outputs(result, tmp_path / "out", seeds=1)
    assert result["settings"]["goal_metric"] == "chrf"


def test_plot_forgetting_from_results_json(tmp_path):
    row = {f"{s}_{m}": (50.0, 1.0) for s in ("domain", "general") for m in ("exact_match", "chrf", "bleu")}
    result = {"base": {s: {"exact_match": 10.0, "chrf": 40.0, "bleu": 5.0} for s in ("domain", "general")},
              "variants": [{"name": "plain", "family": "plain"}, {"name": "l2sp 0.1", "family": "l2sp"}],
              "summary": {"plain": row, "l2sp 0.1": row}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(result))
    output = plot_forgetting.main([str(path), "--metric", "bleu"])
    assert output.endswith("forgetting_bleu.png")
    with open(output, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_source_check_tells_a_model_that_reads_its_source_from_one_that_does_not(sample_dir):
    import torch

    sample, tokenizer = throughput.read_sample(sample_dir)
    model = throughput.MarianMTModel(throughput.marian_config("tiny", 0, tokenizer)).eval()
    sources, targets = sample["sources"][:8], sample["targets"][:8]
    shuffled = sources[1:] + sources[:1]
    with torch.inference_mode():
        reads = source_check.held_out_loss(model, tokenizer, sources, targets, 4, 32)
        assert reads != source_check.held_out_loss(model, tokenizer, shuffled, targets, 4, 32)
        assert source_check.encoder_spread(model, tokenizer, sources, 32) > 0
        # An encoder whose last layer norm outputs a constant: the source no longer matters.
        final_norm = model.model.encoder.layers[-1].final_layer_norm
        torch.nn.init.zeros_(final_norm.weight)
        assert source_check.held_out_loss(model, tokenizer, sources, targets, 4, 32) == pytest.approx(
            source_check.held_out_loss(model, tokenizer, shuffled, targets, 4, 32))
        # Marian's encoder ends with that layer norm: 0·x + bias is its bias exactly, the same float in every
        # sentence, and the standard deviation of identical floats is exactly 0; any source left in would not be.
        assert source_check.encoder_spread(model, tokenizer, sources, 32) == 0.0


def test_serving_times_pytorch_and_both_exports_and_scores_the_trained_model(tmp_path, monkeypatch):
    pytest.importorskip("ctranslate2")
    from benchmarks import serving

    sources, targets = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    model_dir = str(tmp_path / "model")
    tokenizer = train_marian_tokenizer(sources + targets, model_dir, vocab_size=80)
    serving.MarianMTModel(throughput.marian_config("tiny", 0, tokenizer)).save_pretrained(model_dir)
    (tmp_path / "src.txt").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("\n".join(targets) + "\n", encoding="utf-8")
    monkeypatch.setattr(serving, "OPUS_SHAPE", dict(vocab_size=100, d_model=16, layers=1, heads=2, ffn_dim=32))
    summary = serving.main(["--model", model_dir, "--test", f"{tmp_path / 'src.txt'},{tmp_path / 'ref.txt'}",
                            "--sentences", "8", "--opus_sentences", "12", "--opus_max_new_tokens", "4",
                            "--threads", "1,2", "--batch_size", "4", "--num_beams", "2", "--max_new_tokens", "8",
                            "--rounds", "2", "--json", str(tmp_path / "s.json")])
    cells = {(r["engine"], r["threads"]) for r in summary["models"]["trained"]}
    assert cells == {(e, t) for e in ("pytorch", "ct2-float32", "ct2-int8") for t in (1, 2)}
    for row in summary["models"]["trained"]:
        assert len(row["sentences_per_s_per_round"]) == 2 and row["sentences_per_s"] > 0
        assert 0 <= row["chrf"] <= 100
        pytorch = next(r for r in summary["models"]["trained"] if r["engine"] == "pytorch" and r["threads"] == row["threads"])
        assert row["ratio"] == pytest.approx(row["sentences_per_s"] / pytorch["sentences_per_s"])
        assert row["chrf_delta"] == pytest.approx(row["chrf"] - pytorch["chrf"])
    assert all("chrf" not in r for r in summary["models"]["opus_sized"]) and len(summary["models"]["opus_sized"]) == 6
    assert json.loads((tmp_path / "s.json").read_text())["target_met"] == summary["target_met"]


def test_overhead_rounds_rotate_the_order_so_each_variant_takes_each_place():
    variants = ("plain", "coupled", "decoupled")
    orders = [regularizer_overhead.rotated(variants, r) for r in range(3)]
    assert orders == [["plain", "coupled", "decoupled"], ["coupled", "decoupled", "plain"],
                      ["decoupled", "plain", "coupled"]]


def test_overhead_ratios_are_paired_within_a_round():
    # Round 2 is slow for everyone: paired ratios stay 1.1, ratios of pooled medians would not.
    per_round = [{"plain": 1.0, "coupled": 1.1}, {"plain": 3.0, "coupled": 3.3}, {"plain": 1.2, "coupled": 1.32}]
    ratios = regularizer_overhead.paired_ratios(per_round, ("plain", "coupled"))
    assert ratios["coupled"]["per_round"] == pytest.approx([1.1, 1.1, 1.1])
    assert ratios["coupled"]["median"] == pytest.approx(1.1) and ratios["plain"]["median"] == 1.0


def test_overhead_benchmark_runs_every_variant_and_leaves_out_the_first_update(tmp_path, capsys):
    summary = regularizer_overhead.main([
        "--vocab_size", "40", "--d_model", "16", "--layers", "1", "--batch_size", "2", "--seq_len", "4",
        "--steps", "2", "--rounds", "2", "--alone_repeats", "2", "--threads", "1", "--skip_memory", "--clock", "cpu",
        "--json", str(tmp_path / "o.json"),
    ])  # fmt: skip
    assert set(summary["ratios"]) == set(regularizer_overhead.DEFAULT_VARIANTS) and summary["clock"] == "cpu"
    assert all(len(t) == 2 * 2 for t in summary["timings"].values())  # 2 rounds x 2 updates, the first of 3 left out
    assert all(len(r["per_round"]) == 2 for r in summary["ratios"].values())
    # A bfloat16 anchor is half a float32 one, and the update makes no float32 copy of it.
    memory = summary["anchor_memory"]
    assert memory["bfloat16"]["anchor_bytes"] * 2 == memory["float32"]["anchor_bytes"]
    assert memory["bfloat16"]["update_temporary_bytes"] == 0 and summary["bf16_anchor_share"] == 0.5
    assert "decoupled_bf16" in capsys.readouterr().out
    assert json.loads((tmp_path / "o.json").read_text())["ratios"]["coupled"]["median"] > 0


def test_pareto_front_keeps_the_points_no_other_beats_on_both_scores():
    points = {"base": (50.0, 60.0), "plain": (68.0, 47.0), "l2sp 0.01": (65.0, 57.0), "replay": (66.0, 55.0),
              "kl": (62.0, 57.0), "same as l2sp": (65.0, 57.0), "worse": (60.0, 50.0)}
    # kl is matched on general and beaten on in-domain by l2sp 0.01; equal points both stay
    assert plot_forgetting.pareto_front(points) == ["base", "l2sp 0.01", "same as l2sp", "replay", "plain"]


def test_startup_time_runs_every_help_and_both_translations_and_checks_the_usage_lines(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(command, stdin):
        calls.append((command, stdin))
        usage = "usage: hf-l2mt " + " ".join(command[1:-1]) if command[-1] == "--help" else "fünfhunderteinundzwanzig"
        return 0.5, "usage: hf-l2mt [-h]" if command[1:] == ["train", "en_de", "--help"] else usage

    monkeypatch.setattr(startup_time, "run_once", fake_run)
    monkeypatch.setattr(startup_time, "console_script", lambda: ["hf-l2mt"])
    rows = startup_time.main(["--runs", "3", "--model_dir", str(tmp_path), "--export_dir", str(tmp_path)])

    helps = [row for row in rows if row["command"].endswith("--help")]
    translations = [row for row in rows if row["command"].endswith("< LINE")]
    assert len(helps) == len(startup_time.HELP_COMMANDS) and len(translations) == 2
    assert len(calls) == 3 * len(rows)
    assert [row["target"] for row in translations] == [startup_time.EXPORT_SECONDS, startup_time.PYTORCH_SECONDS]
    assert all(stdin == "five hundred and twenty-one\n" for command, stdin in calls if command[1:2] == ["translate"]
               and command[-1] != "--help")
    wrong = [row["command"] for row in rows if not row["usage_ok"]]
    assert wrong == ["hf-l2mt train en_de --help"]
    assert "usage line wrong: 'usage: hf-l2mt [-h]'" in capsys.readouterr().out


def test_export_parity_counts_identical_lines_per_setting(tmp_path):
    pytest.importorskip("ctranslate2")
    from benchmarks import export_parity
    from hf_l2mt.evaluation import ctranslate2_options
    from tiny_checkpoints import save_looping_checkpoint

    chosen = ctranslate2_options.UNHURRIED_PATIENCE
    model_dir = save_looping_checkpoint(tmp_path / "looping")  # its every translation is the same loop
    rows = export_parity.main(["--model", model_dir, "--cardinals", "12", "--quantizations", "float32",
                               "--patience", "1,3", "--json", str(tmp_path / "rows.json")])
    settings = [(row["num_beams"], row["patience"]) for row in rows]
    assert settings == [(1, None), (4, 1.0), (4, 3.0)]
    assert all(row["identical"] == row["count"] == 12 for row in rows)
    assert json.loads((tmp_path / "rows.json").read_text()) == rows
    assert ctranslate2_options.UNHURRIED_PATIENCE == chosen, "each patience is set for its run only"
