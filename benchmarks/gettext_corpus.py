"""English→German software strings from the gettext catalogues that Debian packages ship.

Each package in ``PACKAGES`` is fetched with ``apt-get download`` (it is not installed, and apt-get
download needs no root) into a cache folder, unpacked with ``dpkg-deb -x``, and its German
catalogues (``locale/de/LC_MESSAGES/*.mo`` or ``de_DE``; ``de.po`` / ``de_DE.po``) are read with
``hf_l2mt.data.load_mo`` / ``load_po``. Swiss and Austrian catalogues (``de_CH``, ``de_AT``) are
left out: their spelling differs (``ss`` for ``ß``) and one source would get two references.
Nothing downloaded is committed (the licences vary: GPL, LGPL, the PostgreSQL licence, ...); the
packages are read again at run time.

The pairs are cleaned with ``hf_l2mt.data.clean_pairs`` (whitespace, empty, too long, length ratio,
duplicate pair) and then de-duplicated by source across packages: a source string found in several
packages (``"out of memory"``, ``"Cancel"``) keeps one pair, the one of the package listed first
in ``PACKAGES``. The product catalogues a study adapts to (GCC, PostgreSQL) are listed first, so
that a held-out domain keeps its whole catalogue and the general part never holds one of its
sources; shared libraries (GLib, GTK, libc) come after the programs. Each pair keeps its package.

    python -m benchmarks.gettext_corpus                      # all packages, report and pairs.jsonl
    python -m benchmarks.gettext_corpus --domain postgresql  # and the four splits of that domain
    python -m benchmarks.gettext_corpus --packages coreutils tar --output_dir /tmp/gettext_small

Cache folder (``--cache_dir``, default ``~/.cache/hf_l2mt/gettext``): ``debs/`` (the packages),
``unpacked/<package>_<version>_<arch>/``, ``arrow/`` (the loader's cache). Output folder (``--output_dir``, default
``<cache_dir>/corpus``): ``pairs.jsonl`` (``source``, ``target``, ``package``), ``report.json`` and
``report.md``; with ``--domain``, ``general_train.jsonl``, ``general_test.jsonl``,
``domain_train.jsonl`` and ``domain_test.jsonl``.
"""

import argparse
import glob
import itertools
import json
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass

import numpy as np
from datasets import Dataset, concatenate_datasets

from hf_l2mt.data import clean_pairs, load_mo, load_po, split_pairs
from hf_l2mt.evaluation.placeholders import placeholder_accuracy

SRC_LANG, TGT_LANG = "en", "de"
DEFAULT_CACHE = os.path.join("~", ".cache", "hf_l2mt", "gettext")

# (package, family, what its catalogue holds), in the order that decides which package keeps a
# source string found in several (see the module docstring). Checked on Debian 12 (bookworm);
# a family is what --domain holds out (a product can span several packages).
PACKAGES = (
    ("gcc-12-locales", "gcc", "GCC 12 compiler diagnostics (gcc.mo, cpplib.mo)"),
    ("postgresql-15", "postgresql", "PostgreSQL 15 server and client tool messages (postgres-15.mo, psql-15.mo, ...)"),
    ("binutils-common", "binutils", "assembler, linker and object-file tool messages"),
    ("coreutils", "coreutils", "ls, cp, mv, ... messages and --help texts"),
    ("findutils", "findutils", "find and xargs messages"),
    ("diffutils", "diffutils", "diff, cmp, sdiff messages"),
    ("tar", "tar", "tar messages"),
    ("gettext", "gettext", "msgfmt, xgettext, ... messages"),
    ("dpkg", "dpkg", "Debian package manager messages"),
    ("apt", "apt", "APT package manager messages"),
    ("git", "git", "Git messages"),
    ("gnupg-l10n", "gnupg", "GnuPG messages"),
    ("wget", "wget", "wget messages"),
    ("util-linux-locales", "util-linux", "mount, fdisk, lsblk, ... messages"),
    ("e2fsprogs-l10n", "e2fsprogs", "ext2/3/4 file system tool messages"),
    ("gimp-data", "gimp", "GIMP user interface, plug-ins and scripts"),
    ("libgtk-3-common", "gtk", "GTK 3 widget strings and properties"),
    ("libgtk2.0-common", "gtk", "GTK 2 widget strings and properties"),
    ("libglib2.0-data", "glib", "GLib and GIO messages"),
    ("libc-l10n", "libc", "GNU C library messages (strerror, locale tools)"),
)
FAMILIES = sorted({family for _, family, _ in PACKAGES})
LENGTH_BINS = (1, 2, 3, 5, 9, 17, 33)  # source words: 1, 2, 3-4, 5-8, 9-16, 17-32, 33+
PERCENTILES = (10, 25, 50, 75, 90, 99)


class GettextCorpusError(ValueError):
    """A package or tool the corpus cannot be built from."""


@dataclass
class GettextCorpus:
    pairs: Dataset  # source, target, package
    report: dict


def read_corpus(folder: str, max_chars: int = 200) -> GettextCorpus:
    """The corpus that ``main`` wrote to ``folder`` (``pairs.jsonl`` and ``report.json``), for a machine that
    cannot download the packages; the pairs keep their order, so the splits are the ones built here."""
    paths = [os.path.join(folder, name) for name in ("pairs.jsonl", "report.json")]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise GettextCorpusError(f"--gettext_corpus {folder}: {', '.join(missing)} not found; accepted: a folder "
                                 "written by python -m benchmarks.gettext_corpus --output_dir FOLDER")
    with open(paths[1], encoding="utf-8") as handle:
        report = json.load(handle)
    if report["max_chars"] != max_chars:
        raise GettextCorpusError(f"--gettext_corpus {folder}: built with max_chars {report['max_chars']}; "
                                 f"accepted: a corpus built with max_chars {max_chars}")
    rows = []
    with open(paths[0], encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            rows.append({"source": row["source"], "target": row["target"], "package": row["package"]})
    report = {name: value for name, value in report.items() if name not in ("splits", "domain", "seed")}
    return GettextCorpus(Dataset.from_list(rows), report)


def family_of(package: str) -> str:
    return next((family for name, family, _ in PACKAGES if name == package), package)


def _need_tool(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise GettextCorpusError(
            f"{tool}: not found on PATH; the gettext corpus is fetched with apt-get and unpacked with dpkg-deb "
            "(a Debian or Ubuntu system); accepted: a machine with both, or a --cache_dir already holding "
            "debs/<package>_*.deb for every package"
        )
    return path


def download_deb(package: str, folder: str) -> str:
    """The ``.deb`` of ``package`` in ``folder``, fetched with ``apt-get download`` unless it is there."""
    found = glob.glob(os.path.join(folder, f"{package}_*.deb"))
    if found:
        return max(found, key=os.path.getmtime)  # the version fetched last
    apt_get, apt_cache = _need_tool("apt-get"), _need_tool("apt-cache")
    known = subprocess.run([apt_cache, "show", "--no-all-versions", package], check=False, capture_output=True, text=True)
    if known.returncode != 0 or not known.stdout.strip():
        raise GettextCorpusError(
            f"--packages {package!r}: apt knows no such package (apt-cache show found nothing; run apt-get update?); "
            f"accepted: a Debian package name, e.g. one of {', '.join(name for name, _, _ in PACKAGES[:5])}, ..."
        )
    os.makedirs(folder, exist_ok=True)
    fetched = subprocess.run([apt_get, "download", package], cwd=folder, check=False, capture_output=True, text=True)
    found = glob.glob(os.path.join(folder, f"{package}_*.deb"))
    if fetched.returncode != 0 or not found:
        raise GettextCorpusError(f"apt-get download {package} failed in {folder}: {fetched.stderr.strip()[-500:]}")
    return found[0]


def unpack_deb(deb: str, folder: str) -> str:
    """``dpkg-deb -x`` into ``folder`` (through a temporary folder, so a failure leaves no half tree)."""
    if os.path.isdir(folder):
        return folder
    dpkg_deb = _need_tool("dpkg-deb")
    tmp = f"{folder}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    done = subprocess.run([dpkg_deb, "-x", deb, tmp], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise GettextCorpusError(f"dpkg-deb -x {deb}: {done.stderr.strip()[-500:]}")
    os.replace(tmp, folder)
    return folder


def german_catalogues(folder: str) -> list[str]:
    """The German ``.mo`` and ``.po`` catalogues under ``folder`` (``de`` and ``de_DE``), sorted."""
    found = []
    for root, _, files in os.walk(folder):
        parts = root.split(os.sep)
        for name in files:
            compiled = name.endswith(".mo") and parts[-1] == "LC_MESSAGES" and parts[-2:-1] in (["de"], ["de_DE"])
            if compiled or name in ("de.po", "de_DE.po"):
                found.append(os.path.join(root, name))
    return sorted(found)


def _languages(folder: str) -> list[str]:
    return sorted({os.path.basename(os.path.dirname(path)) for path in glob.glob(
        os.path.join(folder, "**", "LC_MESSAGES"), recursive=True)})


def package_pairs(package: str, cache_dir: str) -> tuple[Dataset, dict]:
    """All German pairs of ``package`` (before cleaning), labelled with it, and what was read."""
    deb = download_deb(package, os.path.join(cache_dir, "debs"))
    # one folder per .deb file name (package, version, architecture): a newer version is unpacked anew
    folder = unpack_deb(deb, os.path.join(cache_dir, "unpacked", os.path.basename(deb)[:-len(".deb")]))
    catalogues = german_catalogues(folder)
    if not catalogues:
        languages = _languages(folder)
        raise GettextCorpusError(
            f"--packages {package!r}: {os.path.basename(deb)} has no German gettext catalogue "
            f"(no locale/de/LC_MESSAGES/*.mo, no de.po); its catalogues are for: {', '.join(languages) or 'none'}; "
            "accepted: a package that ships German catalogues, such as those in benchmarks.gettext_corpus.PACKAGES"
        )
    parts = []
    for path in catalogues:
        loader = load_mo if path.endswith(".mo") else load_po
        parts.append(loader(path, SRC_LANG, TGT_LANG, cache_dir=os.path.join(cache_dir, "arrow")))
    pairs = concatenate_datasets(parts)
    pairs = pairs.add_column("package", [package] * len(pairs))
    read = {"deb": os.path.basename(deb), "catalogues": [os.path.relpath(p, folder) for p in catalogues],
            "pairs_read": len(pairs)}
    return pairs, read


def dedupe_sources(pairs: Dataset) -> tuple[Dataset, dict[str, int]]:
    """The first pair of each source (rows in package order); the dropped pairs counted per package."""
    seen, keep, dropped = set(), [], Counter()
    for row, (source, package) in enumerate(zip(pairs["source"], pairs["package"])):
        if source in seen:
            dropped[package] += 1
        else:
            seen.add(source)
            keep.append(row)
    return pairs.select(keep), dict(dropped)


def _placeholders_kept(sources: list[str], targets: list[str]) -> dict:
    """How many references keep exactly their source's placeholders: the ceiling of a model's accuracy."""
    result = placeholder_accuracy(sources, targets)
    return {name: result[name] for name in ("correct", "sentences_with_placeholder", "accuracy")}


def length_distribution(sources: list[str]) -> dict:
    """Source lengths in whitespace-separated words: percentiles, mean, max and a histogram."""
    words = np.array([len(source.split()) for source in sources])
    edges = list(LENGTH_BINS) + [None]
    histogram = {}
    for low, high in itertools.pairwise(edges):
        label = str(low) if high == low + 1 else (f"{low}+" if high is None else f"{low}-{high - 1}")
        histogram[label] = int(((words >= low) & (words < (high or 10**9))).sum())
    return {"unit": "source words", "pairs": len(words), "mean": float(words.mean()), "max": int(words.max()),
            "percentiles": {f"p{p}": float(np.percentile(words, p)) for p in PERCENTILES}, "histogram": histogram}


def build_corpus(packages=None, cache_dir: str = DEFAULT_CACHE, max_chars: int = 200) -> GettextCorpus:
    """Fetch, read, clean and de-duplicate ``packages`` (default: all of ``PACKAGES``, in that order)."""
    cache_dir = os.path.expanduser(cache_dir)
    packages = list(packages or [name for name, _, _ in PACKAGES])
    order = [name for name, _, _ in PACKAGES]
    # Listed packages keep their place in PACKAGES (which decides duplicates); others follow in the order given.
    packages = sorted(dict.fromkeys(packages), key=lambda p: order.index(p) if p in order else len(order))
    read, parts = {}, []
    for package in packages:
        pairs, read[package] = package_pairs(package, cache_dir)
        parts.append(pairs)
    cleaned, cleaning = clean_pairs(concatenate_datasets(parts), max_length=max_chars, name="gettext catalogues")
    deduped, same_source = dedupe_sources(cleaned)
    kept = Counter(deduped["package"])
    sources, targets, labels = deduped["source"], deduped["target"], deduped["package"]
    per_package = {package: {"family": family_of(package), **read[package], "after_cleaning": 0,
                             "same_source_dropped": same_source.get(package, 0), "pairs": kept.get(package, 0),
                             "references_keep_placeholders": _placeholders_kept(
                                 [s for s, p in zip(sources, labels) if p == package],
                                 [t for t, p in zip(targets, labels) if p == package])}
                   for package in packages}
    for package, count in Counter(cleaned["package"]).items():
        per_package[package]["after_cleaning"] = count
    report = {
        "packages": per_package, "pairs_read": cleaning.total, "pairs": len(deduped), "max_chars": max_chars,
        "dropped": {**cleaning.dropped, "same_source": sum(same_source.values())},
        "length": length_distribution(sources), "references_keep_placeholders": _placeholders_kept(sources, targets),
    }
    return GettextCorpus(deduped, report)


def domain_splits(corpus: GettextCorpus, domain: str, heldout: int, seed: int = 0) -> dict[str, Dataset]:
    """``general_train``, ``general_test``, ``domain_train``, ``domain_test``: ``domain`` (a family) held out.

    The held-out sets take ``heldout`` distinct sources each (``split_pairs``, fixed by ``seed``).
    No source is in two splits: the corpus has one pair per source.
    """
    families = sorted({family_of(p) for p in corpus.report["packages"]})
    if domain not in families:
        raise GettextCorpusError(f"--domain {domain!r}: not a family of the corpus' packages; accepted: {', '.join(families)}")
    in_domain = corpus.pairs.filter(lambda p: family_of(p) == domain, input_columns="package")
    general = corpus.pairs.filter(lambda p: family_of(p) != domain, input_columns="package")
    for name, part in (("domain", in_domain), ("general", general)):
        if len(part) < 2 * heldout:
            raise GettextCorpusError(
                f"--heldout {heldout}: the {name} part of --domain {domain!r} has {len(part)} pairs; "
                f"accepted: --heldout at most {len(part) // 2}")
    splits = {}
    for name, part in (("general", general), ("domain", in_domain)):
        parted = split_pairs(part, {"test": heldout}, seed=seed)
        splits[f"{name}_train"], splits[f"{name}_test"] = parted["train"], parted["test"]
    return splits


def write_jsonl(dataset: Dataset, path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"source": row["source"], "target": row["target"], "package": row["package"]},
                                     ensure_ascii=False) + "\n" for row in dataset)
    os.replace(tmp, path)


def report_markdown(report: dict, splits: dict | None = None) -> str:
    def kept_placeholders(row):
        found = row["references_keep_placeholders"]
        if not found["sentences_with_placeholder"]:
            return "no placeholder"
        return f"{found['correct']:,} / {found['sentences_with_placeholder']:,} ({100 * found['accuracy']:.1f} %)"

    header = ("| package | family | catalogues | pairs read | after cleaning | same source as an earlier package | kept "
              "| references keeping their placeholders |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for package, row in report["packages"].items():
        lines.append(f"| {package} | {row['family']} | {len(row['catalogues'])} | {row['pairs_read']:,} "
                     f"| {row['after_cleaning']:,} | {row['same_source_dropped']:,} | {row['pairs']:,} "
                     f"| {kept_placeholders(row)} |")
    lines.append(f"| **all** | | | {report['pairs_read']:,} | | {report['dropped']['same_source']:,} "
                 f"| **{report['pairs']:,}** | {kept_placeholders(report)} |")
    dropped = ", ".join(f"{reason} {count:,}" for reason, count in report["dropped"].items())
    length = report["length"]
    percentiles = ", ".join(f"{name} {value:g}" for name, value in length["percentiles"].items())
    histogram = " | ".join(length["histogram"])
    counts = " | ".join(f"{count:,}" for count in length["histogram"].values())
    lines += ["", f"Dropped (max {report['max_chars']} characters a side): {dropped}.", "",
              f"Source length in words: mean {length['mean']:.1f}, {percentiles}, max {length['max']}.", "",
              f"| words | {histogram} |", "|---|" + "---|" * len(length["histogram"]), f"| pairs | {counts} |"]
    if splits:
        lines += ["", "Splits: " + ", ".join(f"{name} {len(split):,}" for name, split in splits.items()) + "."]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", help="Debian packages to read (default: all of PACKAGES)")
    parser.add_argument("--cache_dir", default=DEFAULT_CACHE, help="where packages are downloaded and unpacked")
    parser.add_argument("--output_dir", help="default: <cache_dir>/corpus")
    parser.add_argument("--max_chars", type=int, default=200, help="longest source or target kept, in characters")
    parser.add_argument("--domain", help=f"hold out this family and write the four splits; one of {', '.join(FAMILIES)}")
    parser.add_argument("--heldout", type=int, default=500, help="held-out pairs of each part (general, domain)")
    parser.add_argument("--seed", type=int, default=0, help="fixes the held-out splits")
    opts = parser.parse_args(argv)
    opts.cache_dir = os.path.expanduser(opts.cache_dir)
    opts.output_dir = os.path.expanduser(opts.output_dir or os.path.join(opts.cache_dir, "corpus"))
    return opts


def main(argv=None) -> dict:
    opts = parse_args(argv)
    families = sorted({family_of(p) for p in opts.packages or [name for name, _, _ in PACKAGES]})
    if opts.domain is not None and opts.domain not in families:  # checked before anything is downloaded
        raise GettextCorpusError(f"--domain {opts.domain!r}: not a family of these packages; accepted: {', '.join(families)}")
    corpus = build_corpus(opts.packages, opts.cache_dir, opts.max_chars)
    splits = domain_splits(corpus, opts.domain, opts.heldout, opts.seed) if opts.domain else None
    os.makedirs(opts.output_dir, exist_ok=True)
    write_jsonl(corpus.pairs, os.path.join(opts.output_dir, "pairs.jsonl"))
    for name, split in (splits or {}).items():
        write_jsonl(split, os.path.join(opts.output_dir, f"{name}.jsonl"))
    report = {**corpus.report, "splits": {name: len(s) for name, s in (splits or {}).items()},
              "domain": opts.domain, "seed": opts.seed}
    with open(os.path.join(opts.output_dir, "report.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False)
    table = report_markdown(corpus.report, splits)
    with open(os.path.join(opts.output_dir, "report.md"), "w", encoding="utf-8") as handle:
        handle.write(table)
    print(table)
    return report


if __name__ == "__main__":
    main()
