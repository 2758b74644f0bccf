"""benchmarks/upstream_trainer_tests.py on a toy tests/ folder laid out as transformers' is: it runs the tests
unswapped and swapped, and tells the tests that fail only with L2MTTrainer."""

import json
import textwrap

import pytest

from benchmarks import upstream_trainer_tests as runner

TOY = '''
    import unittest

    import torch
    import transformers
    from huggingface_hub.errors import OfflineModeIsEnabled
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_seq2seq import Seq2SeqTrainer


    class SubclassedAtImport(Trainer):
        pass


    class Toy(unittest.TestCase):
        def test_passes_in_both(self):
            self.assertTrue(issubclass(Trainer, transformers.trainer.Trainer))

        def test_fails_only_unswapped(self):
            names = [cls.__name__ for cls in SubclassedAtImport.__mro__ + Seq2SeqTrainer.__mro__]
            self.assertEqual(names.count("L2MTTrainer"), 2)

        def test_fails_only_swapped(self):
            self.assertIs(TrainingArguments, transformers.training_args.TrainingArguments)

        def test_arguments_pickle_as_trainer_saves_them(self):
            args = TrainingArguments(output_dir="out", report_to=[])
            torch.save(args, "training_args.bin")
            loaded = torch.load("training_args.bin", weights_only=False)
            self.assertEqual(getattr(loaded, "nonfinite_loss", "continue"), "continue")

        def test_needs_the_hub(self):
            raise OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/models: offline mode is enabled.")
'''


def toy_tests(root):
    trainer_dir = root / "tests" / "trainer"
    trainer_dir.mkdir(parents=True)
    (root / "tests" / "__init__.py").write_text("")
    (trainer_dir / "__init__.py").write_text("")
    (trainer_dir / "test_trainer_toy.py").write_text(textwrap.dedent(TOY))
    return root / "tests"


def test_runner_reports_each_tests_two_outcomes_and_those_failing_only_with_ours(tmp_path, capsys):
    tests_dir = toy_tests(tmp_path / "checkout")
    status = runner.main(["--tests_dir", str(tests_dir), "--work_dir", str(tmp_path / "work"),
                          "--json", str(tmp_path / "result.json")])
    result = json.loads((tmp_path / "result.json").read_text())
    test = "tests/trainer/test_trainer_toy.py::Toy::"
    assert result["tests"] == {
        test + "test_arguments_pickle_as_trainer_saves_them": {"unswapped": "passed", "swapped": "passed"},
        test + "test_fails_only_swapped": {"unswapped": "passed", "swapped": "failed"},
        test + "test_fails_only_unswapped": {"unswapped": "failed", "swapped": "passed"},
        test + "test_needs_the_hub": {"unswapped": "skipped", "swapped": "skipped"},
        test + "test_passes_in_both": {"unswapped": "passed", "swapped": "passed"},
    }
    assert result["fail_only_swapped"] == [test + "test_fails_only_swapped"]
    assert result["fail_only_unswapped"] == [test + "test_fails_only_unswapped"]
    assert result["counts"]["swapped"] == {"passed": 3, "failed": 1, "skipped": 1}
    assert status == 1
    out = capsys.readouterr().out
    assert "fail only with L2MTTrainer: 1\n  " + test + "test_fails_only_swapped" in out
    assert "swapped    3 passed, 1 failed, 0 error, 1 skipped" in out


@pytest.mark.parametrize("layout, flag, message", [
    ("no_package", "--tests_dir", "has no __init__.py"),
    ("unknown_file", "--files", "test_trainer_nothing.py not in"),
])
def test_runner_refuses_a_folder_that_is_not_transformers_tests(tmp_path, layout, flag, message):
    tests_dir = toy_tests(tmp_path)
    if layout == "no_package":
        (tests_dir / "trainer" / "__init__.py").unlink()
    argv = ["--tests_dir", str(tests_dir)]
    if layout == "unknown_file":
        argv += ["--files", "test_trainer_nothing.py"]
    with pytest.raises(SystemExit, match=rf"^{flag}: .*{message}"):
        runner.main(argv)
