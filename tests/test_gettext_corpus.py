"""The Debian gettext corpus on packages built in the test: nothing is downloaded.

``download_deb`` is replaced by a function that builds the ``.deb`` with ``dpkg-deb --build`` from
catalogues written here with polib, so unpacking, finding the German catalogues, loading, cleaning,
de-duplicating, labelling, splitting and the report all run as they do on Debian's packages.
"""

import json
import os
import shutil
import statistics

import polib
import pytest

from benchmarks import base_scores, domain_adaptation, gettext_corpus
from benchmarks.gettext_corpus import GettextCorpusError
from hf_l2mt.evaluation.metrics import score_translations
from hf_l2mt.evaluation.placeholders import placeholder_accuracy

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed (Debian's dpkg)")

GCC = [(f"expected %qD before %<{word}%>", f"%qD vor %<{word}%> erwartet") for word in
       ("int", "char", "long", "short", "float", "double", "void", "bool")] + [("out of memory", "Speicher erschöpft")]
POSTGRES = [(f"relation \"%s\" does not exist in schema {n}", f"Relation »%s« existiert nicht in Schema {n}")
            for n in range(6)]
COREUTILS = [
    ("out of memory", "Speicher voll"),  # also in gcc-12-locales, listed first: GCC's pair is kept
    ("cannot remove %s", "%s kann nicht entfernt werden"),
    ("Try '%s --help' for more information.", "»%s --help« liefert weitere Informationen."),
    ("a message that is far too long for the limit of sixty characters set in this test",
     "eine Meldung, die für die Grenze von sechzig Zeichen in diesem Test viel zu lang ist"),
    ("missing operand", "Operand fehlt"),
]
TAR = [("missing operand", "Operand fehlt"),  # the same pair as coreutils': dropped as a duplicate by cleaning
       ("Cannot open archive", "Archiv kann nicht geöffnet werden"), ("Done", "Fertig")]


def catalogue(pairs, language="de") -> polib.POFile:
    po = polib.POFile()
    po.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": language}
    for msgid, msgstr in pairs:
        po.append(polib.POEntry(msgid=msgid, msgstr=msgstr))
    po.append(polib.POEntry(msgid="Untranslated", msgstr=""))  # skipped by the loader, never a pair
    return po


# package -> files (path inside the package -> (pairs, language, compiled))
PACKAGE_FILES = {
    "gcc-12-locales": {"usr/share/locale/de/LC_MESSAGES/gcc.mo": (GCC, "de", True)},
    "postgresql-15": {"usr/share/locale/de/LC_MESSAGES/postgres-15.mo": (POSTGRES, "de", True),
                      "usr/share/locale/fr/LC_MESSAGES/postgres-15.mo": (POSTGRES, "fr", True)},
    "coreutils": {"usr/share/locale/de/LC_MESSAGES/coreutils.mo": (COREUTILS, "de", True),
                  # Swiss German is left out: one source would get two references
                  "usr/share/locale/de_CH/LC_MESSAGES/coreutils.mo": ([("Done", "Erledigt")], "de_CH", True)},
    "tar": {"usr/share/tar/po/de.po": (TAR, "de", False)},
    "wget": {"usr/share/locale/fr/LC_MESSAGES/wget.mo": ([("Done", "Terminé")], "fr", True)},
}


@pytest.fixture
def packages(tmp_path, monkeypatch):
    """``download_deb`` builds the package from ``PACKAGE_FILES``; the names it was asked for are recorded."""
    asked = []

    def build_deb(package, folder):
        asked.append(package)
        root = tmp_path / "build" / package
        (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
        (root / "DEBIAN" / "control").write_text(
            f"Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: Test <test@example.org>\n"
            "Description: catalogues made in the test\n", encoding="utf-8")
        for path, (pairs, language, compiled) in PACKAGE_FILES[package].items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            po = catalogue(pairs, language)
            if compiled:
                po.save_as_mofile(str(target))
            else:
                po.save(str(target))
        os.makedirs(folder, exist_ok=True)
        deb = os.path.join(folder, f"{package}_1.0_all.deb")
        assert os.system(f"dpkg-deb --root-owner-group --build {root} {deb} > /dev/null") == 0
        return deb

    monkeypatch.setattr(gettext_corpus, "download_deb", build_deb)
    return asked


def build(tmp_path, names=("gcc-12-locales", "postgresql-15", "coreutils", "tar"), max_chars=60):
    return gettext_corpus.build_corpus(names, cache_dir=str(tmp_path / "cache"), max_chars=max_chars)


def rows(dataset):
    return list(zip(dataset["source"], dataset["target"], dataset["package"]))


def test_each_pair_is_labelled_with_its_package(packages, tmp_path):
    corpus = build(tmp_path)
    by_package = {}
    for source, target, package in rows(corpus.pairs):
        by_package.setdefault(package, set()).add((source, target))
    assert by_package["gcc-12-locales"] == set(GCC)
    assert by_package["postgresql-15"] == set(POSTGRES)  # the French catalogue is not read
    assert ("Done", "Fertig") in by_package["tar"]
    assert ("Done", "Erledigt") not in {pair for pairs in by_package.values() for pair in pairs}  # de_CH


def test_a_source_in_several_packages_keeps_the_pair_of_the_package_listed_first(packages, tmp_path):
    # Asked in the reverse order: PACKAGES' order decides, not the command line's.
    corpus = build(tmp_path, names=("tar", "coreutils", "postgresql-15", "gcc-12-locales"))
    kept = {source: (target, package) for source, target, package in rows(corpus.pairs)}
    assert len(kept) == len(corpus.pairs)  # one pair per source
    assert kept["out of memory"] == ("Speicher erschöpft", "gcc-12-locales")
    assert kept["missing operand"][1] == "coreutils"
    assert list(corpus.report["packages"]) == ["gcc-12-locales", "postgresql-15", "coreutils", "tar"]
    assert corpus.report["packages"]["coreutils"]["same_source_dropped"] == 1
    assert corpus.report["dropped"]["same_source"] == 1


def test_cleaning_drops_and_counts_by_reason(packages, tmp_path):
    corpus = build(tmp_path)
    report = corpus.report
    read = len(GCC) + len(POSTGRES) + len(COREUTILS) + len(TAR)
    assert report["pairs_read"] == read
    # one too long (coreutils), one identical pair in two packages (tar's "missing operand")
    assert report["dropped"] == {"empty": 0, "too_long": 1, "length_ratio": 0, "duplicate": 1, "same_source": 1}
    assert report["pairs"] == len(corpus.pairs) == read - 3
    assert report["packages"]["coreutils"] == {
        "family": "coreutils", "deb": "coreutils_1.0_all.deb", "catalogues": ["usr/share/locale/de/LC_MESSAGES/coreutils.mo"],
        "pairs_read": len(COREUTILS), "after_cleaning": len(COREUTILS) - 1, "same_source_dropped": 1,
        "pairs": len(COREUTILS) - 2, "references_keep_placeholders": {
            "correct": 2, "sentences_with_placeholder": 2, "accuracy": 1.0},
    }
    assert report["packages"]["tar"]["after_cleaning"] == len(TAR) - 1


def test_the_report_counts_lengths_of_the_kept_sources(packages, tmp_path):
    corpus = build(tmp_path)
    words = sorted(len(source.split()) for source in corpus.pairs["source"])
    length = corpus.report["length"]
    assert sum(length["histogram"].values()) == length["pairs"] == len(words)
    assert length["max"] == words[-1]
    assert length["percentiles"]["p50"] == statistics.median(words)
    assert length["histogram"]["1"] == sum(1 for n in words if n == 1)
    assert length["histogram"]["5-8"] == sum(1 for n in words if 5 <= n <= 8)


def test_domain_splits_hold_out_one_family_and_are_fixed_by_the_seed(packages, tmp_path):
    corpus = build(tmp_path)
    splits = gettext_corpus.domain_splits(corpus, "gcc", heldout=2, seed=3)
    again = gettext_corpus.domain_splits(corpus, "gcc", heldout=2, seed=3)
    other = gettext_corpus.domain_splits(corpus, "gcc", heldout=2, seed=4)
    assert {name: rows(split) for name, split in splits.items()} == {name: rows(split) for name, split in again.items()}
    assert rows(other["domain_test"]) != rows(splits["domain_test"]) or rows(other["general_test"]) != rows(
        splits["general_test"])
    assert {p for name in ("domain_train", "domain_test") for p in splits[name]["package"]} == {"gcc-12-locales"}
    assert "gcc-12-locales" not in set(splits["general_train"]["package"]) | set(splits["general_test"]["package"])
    assert len(splits["domain_test"]) == len(splits["general_test"]) == 2
    assert sum(len(split) for split in splits.values()) == len(corpus.pairs)
    sources = [source for split in splits.values() for source in split["source"]]
    assert len(sources) == len(set(sources))  # no source in two splits


def test_main_writes_labelled_jsonl_and_the_report(packages, tmp_path, capsys):
    out = tmp_path / "out"
    report = gettext_corpus.main(["--packages", "coreutils", "gcc-12-locales", "postgresql-15", "--cache_dir",
                                  str(tmp_path / "cache"), "--output_dir", str(out), "--max_chars", "60",
                                  "--domain", "postgresql", "--heldout", "2"])
    lines = [json.loads(line) for line in (out / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == report["pairs"]
    assert {"source": "out of memory", "target": "Speicher erschöpft", "package": "gcc-12-locales"} in lines
    assert report["splits"] == {"general_train": report["pairs"] - len(POSTGRES) - 2, "general_test": 2,
                                "domain_train": len(POSTGRES) - 2, "domain_test": 2}
    for name, count in report["splits"].items():
        assert len((out / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()) == count
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["pairs"] == report["pairs"]
    printed = capsys.readouterr().out
    assert "| coreutils | coreutils | 1 | 5 | 4 | 1 | 3 | 2 / 2 (100.0 %) |" in printed
    assert printed == (out / "report.md").read_text(encoding="utf-8") + "\n"


def test_a_package_without_german_catalogues_is_refused(packages, tmp_path):
    with pytest.raises(GettextCorpusError, match=r"'wget': wget_1.0_all.deb has no German gettext catalogue.*for: fr"):
        build(tmp_path, names=("coreutils", "wget"))


def test_an_unknown_domain_is_refused_before_anything_is_fetched(packages, tmp_path):
    with pytest.raises(GettextCorpusError, match=r"--domain 'mysql'.*accepted: coreutils, tar"):
        gettext_corpus.main(["--packages", "coreutils", "tar", "--cache_dir", str(tmp_path), "--domain", "mysql"])
    assert packages == []
    with pytest.raises(GettextCorpusError, match=r"--heldout 5: the domain part of --domain 'tar' has 2 pairs"):
        gettext_corpus.domain_splits(build(tmp_path, names=("coreutils", "tar")), "tar", heldout=5)


def fake_tools(tmp_path, monkeypatch, *tools):
    """A PATH holding only ``tools``, each a script that fails as apt does for an unknown package."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in tools:
        (folder / tool).write_text("#!/bin/sh\necho 'E: No packages found' >&2\nexit 100\n")
        (folder / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))


def test_an_unknown_package_is_refused_by_name(tmp_path, monkeypatch):
    fake_tools(tmp_path, monkeypatch, "apt-get", "apt-cache")
    with pytest.raises(GettextCorpusError, match=r"--packages 'no-such-package': apt knows no such package"):
        gettext_corpus.download_deb("no-such-package", str(tmp_path / "debs"))


def test_without_apt_get_the_error_says_what_is_needed(tmp_path, monkeypatch):
    fake_tools(tmp_path, monkeypatch, "apt-cache")
    with pytest.raises(GettextCorpusError, match=r"apt-get: not found on PATH.*debs/<package>_\*.deb"):
        gettext_corpus.download_deb("coreutils", str(tmp_path / "debs"))


def test_a_cached_package_is_not_fetched_again(tmp_path, monkeypatch):
    fake_tools(tmp_path, monkeypatch)  # no apt at all: only the cache can answer
    (tmp_path / "debs").mkdir()
    (tmp_path / "debs" / "coreutils_9.1-1_amd64.deb").write_bytes(b"")
    assert gettext_corpus.download_deb("coreutils", str(tmp_path / "debs")).endswith("coreutils_9.1-1_amd64.deb")


def test_the_forgetting_study_refuses_an_unknown_gettext_domain():
    with pytest.raises(SystemExit):
        domain_adaptation.parse_args(["--task", "gettext", "--domain", "mysql"])
    assert domain_adaptation.parse_args(["--task", "gettext"]).domain == "postgresql"
    assert domain_adaptation.parse_args(["--task", "numbers"]).domain == "year"


def test_a_gettext_base_is_pretrained_and_scored_on_both_held_out_sets(packages, tmp_path, monkeypatch):
    # The corpus of the four packages made here stands in for the twenty of PACKAGES.
    listed = [row for row in gettext_corpus.PACKAGES if row[0] in ("gcc-12-locales", "postgresql-15", "coreutils", "tar")]
    monkeypatch.setattr(gettext_corpus, "PACKAGES", tuple(listed))
    where = ["--task", "gettext", "--domain", "postgresql", "--heldout", "2", "--cache_dir", str(tmp_path / "base"),
             "--gettext_cache", str(tmp_path / "debian")]
    progress = domain_adaptation.main([*where, "--stage", "pretrain", "--pretrain_steps", "2", "--pretrain_batch_size",
                                       "4", "--vocab_size", "60", "--output_dir", str(tmp_path / "out")])
    assert progress["steps"] == 2
    result = base_scores.main([*where, "--examples", "2", "--json", str(tmp_path / "scores.json")])
    assert result["base_progress"]["steps"] == 2
    corpus = gettext_corpus.build_corpus(["gcc-12-locales", "postgresql-15", "coreutils", "tar"],
                                         cache_dir=str(tmp_path / "debian"))
    splits = gettext_corpus.domain_splits(corpus, "postgresql", heldout=2)
    for name, split in (("general (all packages but postgresql)", "general_test"),
                        ("in-domain (postgresql)", "domain_test")):
        row, sources, references = result["sets"][name], splits[split]["source"], splits[split]["target"]
        scores = score_translations(row["translations"], references)
        assert (row["chrf"], row["bleu"], row["exact_match"]) == (scores["chrf"], scores["bleu"], scores["exact_match"])
        assert row["placeholders"]["model"]["correct"] == placeholder_accuracy(sources, row["translations"])["correct"]
        assert row["placeholders"]["references"]["accuracy"] == 1.0
        assert [e["source"] for e in row["examples"]] == [sources[0], sources[-1]]
    assert json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))["sets"].keys() == result["sets"].keys()


def test_a_small_translation_memory_is_a_fixed_nested_subset_of_the_in_domain_pairs():
    from datasets import Dataset

    from benchmarks.forgetting_tasks import in_domain_subset

    train = Dataset.from_dict({"source": [f"s{i}" for i in range(50)], "target": [f"t{i}" for i in range(50)]})
    small, larger = in_domain_subset(train, 5), in_domain_subset(train, 20)
    assert small["source"] == larger["source"][:5]  # a memory grows: 5 pairs are the first 5 of the 20
    assert small["source"] == in_domain_subset(train, 5)["source"]
    assert set(zip(larger["source"], larger["target"])) <= set(zip(train["source"], train["target"]))
    assert in_domain_subset(train, None) is train
    with pytest.raises(ValueError, match=r"--domain_size 51: the in-domain part has 50 training pairs; accepted: 1 to 50"):
        in_domain_subset(train, 51)


def test_a_gettext_study_on_a_small_memory_scores_placeholders_of_every_run(packages, tmp_path, monkeypatch):
    listed = [row for row in gettext_corpus.PACKAGES if row[0] in ("gcc-12-locales", "postgresql-15", "coreutils", "tar")]
    monkeypatch.setattr(gettext_corpus, "PACKAGES", tuple(listed))
    where = ["--task", "gettext", "--domain", "gcc", "--heldout", "2", "--cache_dir", str(tmp_path / "base"),
             "--gettext_cache", str(tmp_path / "debian"), "--output_dir", str(tmp_path / "out"), "--vocab_size", "60",
             "--max_length", "24"]
    result = domain_adaptation.main([*where, "--pretrain_steps", "2", "--pretrain_batch_size", "4", "--domain_size", "3",
                                     "--steps", "2", "--batch_size", "2", "--seeds", "2", "--families", "plain", "l2sp",
                                     "--lambdas", "0.1"])
    corpus = gettext_corpus.build_corpus([row[0] for row in listed], cache_dir=str(tmp_path / "debian"))
    splits = gettext_corpus.domain_splits(corpus, "gcc", heldout=2)
    runs = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert json.loads(runs[0]["key"])["domain_size"] == 3  # a small memory is a study of its own
    for name, split in (("in_domain", "domain_test"), ("general", "general_test")):
        sources = splits[split]["source"]
        for variant in ("plain", "l2sp 0.1"):
            kept = [placeholder_accuracy(sources, run["hypotheses"][split.split("_")[0]])["accuracy"]
                    for run in runs if run["variant"] == variant]
            assert result["reports"][variant][f"{name}_placeholders"] == pytest.approx(statistics.fmean(kept))
        base = placeholder_accuracy(sources, runs[0]["hypotheses"][split.split("_")[0]])["accuracy"]
        assert result["reports"]["plain"][f"{name}_placeholders_base"] == base
    table = (tmp_path / "out" / "results.md").read_text()
    assert "placeholders kept, in-domain | placeholders kept, general |" in table
    assert table.rstrip().splitlines()[-1].startswith("Pareto front (mean in-domain and general chrf")


def test_a_corpus_read_from_its_folder_gives_the_splits_of_the_packages(packages, tmp_path):
    names = ["gcc-12-locales", "postgresql-15", "coreutils", "tar"]
    gettext_corpus.main(["--packages", *names, "--cache_dir", str(tmp_path / "cache"), "--output_dir",
                         str(tmp_path / "corpus"), "--domain", "gcc", "--heldout", "2"])
    built = gettext_corpus.build_corpus(names, cache_dir=str(tmp_path / "cache"))
    read = gettext_corpus.read_corpus(str(tmp_path / "corpus"))
    assert rows(read.pairs) == rows(built.pairs)
    for seed in (0, 1):
        from_packages = gettext_corpus.domain_splits(built, "gcc", heldout=2, seed=seed)
        from_folder = gettext_corpus.domain_splits(read, "gcc", heldout=2, seed=seed)
        assert {n: rows(s) for n, s in from_folder.items()} == {n: rows(s) for n, s in from_packages.items()}
    with pytest.raises(GettextCorpusError, match=r"--gettext_corpus .*nowhere.*pairs\.jsonl.* not found; accepted: a "
                                                 r"folder written by python -m benchmarks.gettext_corpus"):
        gettext_corpus.read_corpus(str(tmp_path / "nowhere"))
    with pytest.raises(GettextCorpusError, match="built with max_chars 200; accepted: a corpus built with max_chars 60"):
        gettext_corpus.read_corpus(str(tmp_path / "corpus"), max_chars=60)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_gpu_script_runs_the_gettext_study_from_a_corpus_folder(packages, tmp_path):
    """benchmarks/study_gpu.sh with TASK=gettext, on the CPU and tiny: nothing but the corpus folder is read."""
    import subprocess
    import sys
    import tarfile

    names = ["gcc-12-locales", "postgresql-15", "coreutils", "tar"]
    gettext_corpus.main(["--packages", *names, "--cache_dir", str(tmp_path / "cache"), "--output_dir",
                         str(tmp_path / "corpus")])
    shutil.rmtree(tmp_path / "cache")  # no package is there to read
    tiny = ("--heldout 2 --vocab_size 60 --max_length 24 --pretrain_steps 2 --steps 2 --batch_size 2 --seeds 1 "
            "--families plain l2sp --lambdas 0.1 --threads 1")
    env = {**os.environ, "TASK": "gettext", "GETTEXT_CORPUS": str(tmp_path / "corpus"), "DOMAIN": "postgresql",
           "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"), "PYTHON": sys.executable, "DEVICE": "cpu",
           "LRS": "2e-4", "BATCH": "4", "SHARDS": "2", "PRETRAIN_MINUTES": "5", "BUDGET_S": "300", "EXTRA": tiny}
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "study_gpu.sh")
    done = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = [json.loads(line) for line in (tmp_path / "work" / "study" / "runs.jsonl").read_text().splitlines()]
    assert sorted((run["variant"], run["seed"]) for run in runs) == [("base", 0), ("l2sp 0.1", 0), ("plain", 0)]
    assert all(run.get("device", "cpu") == "cpu" for run in runs)
    with tarfile.open(tmp_path / "out" / "gettext_gpu_results.tgz") as packed:
        assert "study/runs.jsonl" in packed.getnames()
    assert min(os.listdir(tmp_path / "out")).startswith("gettext_gpu_base.tgz.part-")
    wrong = subprocess.run(["bash", script], env={**env, "GETTEXT_CORPUS": str(tmp_path / "nowhere")},
                           capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode == 2 and "GETTEXT_CORPUS=" in wrong.stderr and "has no pairs.jsonl" in wrong.stderr
