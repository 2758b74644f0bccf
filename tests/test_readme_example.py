"""The README's code example runs as printed, with a local checkpoint and a local file for the Hub names."""

import re
from pathlib import Path

from tiny_checkpoints import save_checkpoint, sentence_pairs, write_tsv

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_trains(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    checkpoint = save_checkpoint(tmp_path / "base")
    corpus = write_tsv(tmp_path / "memory.tsv", sentence_pairs(24, seed=1))
    for hub_name, local in (('"Helsinki-NLP/opus-mt-en-de"', repr(checkpoint)), ('"memory.tmx"', repr(corpus)),
                            ("max_steps=2_000", "max_steps=3, logging_steps=1, report_to=[], use_cpu=True"),
                            ('"runs/my-domain"', repr(str(tmp_path / "run")))):
        assert hub_name in code, f"README example no longer contains {hub_name}"
        code = code.replace(hub_name, local)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the project's own README
    trainer = namespace["trainer"]
    assert trainer.state.global_step == 3
    assert any("l2sp_penalty" in row for row in trainer.state.log_history)
