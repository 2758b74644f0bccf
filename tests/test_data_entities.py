"""Entities declared in a TMX's internal DTD subset: expanded, bounded, never read from outside the file."""

import json
import subprocess
import sys

import pytest

from hf_l2mt.data import DataFormatError, load_tmx
from hf_l2mt.data import entities as entities_module
from hf_l2mt.data import memories

UNIT = '<tu><tuv xml:lang="en"><seg>{}</seg></tuv><tuv xml:lang="de"><seg>{}</seg></tuv></tu>\n'


def tmx_text(declarations: str, *sources: str, target: str = "x") -> str:
    doctype = f"<!DOCTYPE tmx [{declarations}]>\n" if declarations else ""
    units = "".join(UNIT.format(source, target) for source in sources)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}<tmx version="1.4"><body>\n{units}</body></tmx>\n'


def laughs(depth: int = 9) -> str:
    """The "billion laughs": ``&lol9;`` is 10**9 times "lol" (3 GB) in a file of about 1 KB."""
    nested = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, depth + 1))
    return '<!ENTITY lol0 "lol">' + nested


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "memory.tmx") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def load(tmp_path):
    return lambda path: list(load_tmx(path, "en", "de", cache_dir=str(tmp_path / "cache"))["source"])


@pytest.fixture
def expansions(monkeypatch):
    """Every ``InternalEntities`` the loader makes, to read how many characters it added."""
    made = []

    class Recorded(entities_module.InternalEntities):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(memories, "InternalEntities", Recorded)
    return made


def test_internal_entities_expand_also_nested_and_with_markup(write, load):
    declarations = ('<!ENTITY product "Django"><!ENTITY short "Dj"><!ENTITY nested "&short;ango">'
                    '<!ENTITY version "&product; 5.0"><!ENTITY coded "&product; <ph>&lt;b&gt;</ph>docs">'
                    '<!ENTITY escaped "a &#38;#60; b &#38;amp;lt; c">')
    path = write(tmx_text(declarations, "Use &product; now", "&nested;", "About &version;.", "&coded;",
                          "&escaped;", "no entity &amp; markup"))
    assert load(path) == ["Use Django now", "Django", "About Django 5.0.", "Django docs", "a < b &lt; c",
                          "no entity & markup"]


def test_an_entity_in_an_inline_code_is_left_out_with_the_code(write, load, expansions):
    path = write(tmx_text('<!ENTITY tag "&lt;b&gt;">', 'Click <bpt i="1">&tag;</bpt>here'))
    assert load(path) == ["Click here"]
    assert expansions[0].added == 0


def test_an_undefined_entity_is_refused_naming_it_and_the_file(write, load):
    for declarations in ("", '<!ENTITY product "Django">'):
        text = tmx_text(declarations, "plain", "a&nbsp;b")
        line = next(number for number, content in enumerate(text.splitlines(), 1) if "&nbsp;" in content)
        path = write(text, name="html.tmx")
        with pytest.raises(DataFormatError, match=rf"html\.tmx line {line}: entity '&nbsp;' is not defined; XML defines "
                                                  r"only &amp;, &lt;, &gt;, &quot;, &apos;, others must be declared"):
            load(path)


def test_an_entity_of_the_external_dtd_is_refused_saying_that_dtd_is_not_read(write, load):
    path = write(tmx_text("", "plain", "a &product;").replace("<tmx ", '<!DOCTYPE tmx SYSTEM "tmx14.dtd">\n<tmx ', 1))
    with pytest.raises(DataFormatError, match=r"entity '&product;' is not defined.*\(its external DTD is not read\)"):
        load(path)


def test_external_entities_are_never_read(write, load, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-TEXT", encoding="utf-8")
    path = write(tmx_text(f'<!ENTITY leak SYSTEM "{secret.as_uri()}">', "plain", "a &leak; b"))
    with pytest.raises(DataFormatError, match=r"memory\.tmx line 5: entity '&leak;' is external .* never read") as error:
        load(path)
    assert "SECRET" not in str(error.value)
    # A parameter entity that would pull the file into the DTD is not read either.
    path = write(tmx_text(f'<!ENTITY % leak SYSTEM "{secret.as_uri()}"> %leak;', "plain"))
    assert load(path) == ["plain"]


def test_an_entity_with_unbalanced_markup_is_refused(write, load):
    with pytest.raises(DataFormatError, match=r"memory\.tmx line \d+: not valid TMX/XML \(Premature end of data"):
        load(write(tmx_text('<!ENTITY open "<ph>">', "a &open; b")))


def test_billion_laughs_and_quadratic_blowup_are_refused_in_bounded_memory(write):
    """Peak memory (ru_maxrss) of a process that loads both bombs grows by under 50 MB; expanded, they are GBs."""
    bombs = {
        "laughs.tmx": tmx_text(laughs(), "&lol9;"),  # 3 GB of text from 1 KB
        "quadratic.tmx": tmx_text(f'<!ENTITY big "{"x" * 100_000}">', *["&big;" * 100] * 200),  # 2 GB from 120 KB
    }
    paths = [write(text, name) for name, text in bombs.items()]
    script = (
        "import json, resource, sys\n"
        "from hf_l2mt.data import DataFormatError, load_tmx\n"
        "before, messages = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, []\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        load_tmx(path, 'en', 'de', cache_dir=path + '.cache')\n"
        "    except DataFormatError as error:\n"
        "        messages.append(str(error))\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(json.dumps({'grown_kb': grown, 'messages': messages}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout.splitlines()[-1])
    assert len(result["messages"]) == 2, done.stdout + done.stderr
    for path, message in zip(paths, result["messages"]):
        assert message.startswith(f"{path}: entity expansion refused (")
        assert "entity expansion bomb" in message
    assert result["grown_kb"] < 50_000


def test_expansion_stops_at_the_segment_bound_before_building(write, load, expansions):
    # 600,000 characters once per segment is allowed; twice in one segment is 1.2 million, over the bound.
    big = "x" * 600_000
    path = write(tmx_text(f'<!ENTITY big "{big}">', "&big;", "&big; &big;"))
    with pytest.raises(DataFormatError, match=r"memory\.tmx: entity expansion refused \(line 5: entities would make "
                                              r"one segment 1,200,000 characters long \('&big;' alone 600,000\), "
                                              r"at most 1,000,000 are allowed\)"):
        load(path)
    assert expansions[0].added == 2 * 600_000  # segment 1, and the first reference of segment 2


def test_our_bounds_hold_where_libxml2_would_let_the_expansion_through(write, load, expansions, monkeypatch):
    """libxml2 >= 2.11 refuses the bombs above itself; older ones do not when huge_tree is on. With bounds
    smaller than libxml2's, the same bombs show ours: refused before building, never past the bound."""
    monkeypatch.setattr(entities_module, "MAX_SEGMENT_CHARS", 1_000)
    monkeypatch.setattr(entities_module, "MIN_FILE_CHARS", 5_000)
    monkeypatch.setattr(entities_module, "FILE_RATIO", 0)
    with pytest.raises(DataFormatError, match=r"line 4: entities would make one segment 3,000 characters long "
                                              r"\('&lol3;' alone 3,000\), at most 1,000"):
        load(write(tmx_text(laughs(depth=3), "&lol3;"), name="laughs.tmx"))
    assert expansions[-1].added == 0
    with pytest.raises(DataFormatError, match=r"with '&big;' entities would add more than 5,000 characters"):
        load(write(tmx_text(f'<!ENTITY big "{"x" * 600}">', *["&big;"] * 20), name="quadratic.tmx"))
    assert expansions[-1].added == 4_800  # 8 segments of 600; the ninth would pass 5,000


def test_an_entity_that_contains_itself_is_refused(write, load):
    with pytest.raises(DataFormatError, match=r"memory\.tmx.*(entity reference loop|refers to itself)"):
        load(write(tmx_text('<!ENTITY a "x&b;"><!ENTITY b "y&a;">', "&a;")))
