"""Mixture files: the shipped TOMLs carry the paper's weights; each bad mixture gives its own clear error."""
import json
import re
from pathlib import Path

import pytest

from tests.trainer_kit.corpus import make_corpus, read_all_tokens
from trainer.data import Corpus, MixtureError, check_tokenizer, load_mixture

REPO = Path(__file__).resolve().parents[1]
ALL_SOURCES = ["refinedweb", "starcoder", "dolma_pes2o", "pile_wikipedia", "pile_stackexchange", "pile_arxiv",
               "pile_rest", "algebraic_stack", "openwebmath", "stackmathqa", "templategsm", "oasst",
               "oasst_octopack", "xp3x", "commitpackft", "openhermes", "ultratextbooks", "ultrachat",
               "magicoder_evol", "magicoder_oss", "evol_codealpaca", "code290k_sharegpt"]


@pytest.fixture(scope="module")
def full_corpus(tmp_path_factory):
    # Every source of the JetMoE recipe, with distinct token counts so group splits are checkable.
    sizes = {s: 200 + 37 * i for i, s in enumerate(ALL_SOURCES)}
    return Corpus.open(make_corpus(tmp_path_factory.mktemp("full"), sizes, vocab=300, val_tokens=40, mean_doc=20))


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    return Corpus.open(make_corpus(tmp_path_factory.mktemp("small"), {"web": 1000, "code": 500, "math": 300},
                                   vocab=300, mean_doc=20))


def write(tmp_path, text, name="m.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_corpus_reads_manifest(small_corpus):
    c = small_corpus
    assert c.sources == ["code", "math", "web"]
    assert c.n_tokens("web") == 1000 and c.n_tokens("code") == 500
    assert c.vocab_size == 300 and c.eos_id == 2 and c.bos_id == 1 and c.dtype == "uint16"
    assert c.tokenizer_path.is_file() and len(c.fingerprint) == 64
    s = c.open_stream("web")
    docs = read_all_tokens(c.root, "web")
    assert s.n_docs == len(docs) and s.n_tokens == 1000
    for d in (0, len(docs) // 2, len(docs) - 1):
        assert (s.doc_tokens(d) == docs[d]).all()
    c.verify()


def test_make_corpus_is_deterministic(tmp_path):
    a = make_corpus(tmp_path / "a", {"x": 300, "y": 200}, vocab=100, seed=3)
    b = make_corpus(tmp_path / "b", {"x": 300, "y": 200}, vocab=100, seed=3)
    for f in sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file()):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_shipped_phase1_has_paper_weights(full_corpus):
    mix = load_mixture(REPO / "mixtures/phase1.toml", full_corpus)
    s = mix.shares
    assert mix.name == "phase1" and mix.max_epochs > 0
    assert s["refinedweb"] == pytest.approx(0.64)
    assert s["starcoder"] == pytest.approx(0.25)
    assert s["pile_arxiv"] == pytest.approx(0.01)
    assert s["openwebmath"] == pytest.approx(0.01)
    assert s["dolma_pes2o"] == pytest.approx(0.01)
    pile = ["pile_wikipedia", "pile_stackexchange", "pile_rest"]
    assert sum(s[p] for p in pile) == pytest.approx(0.08)
    tok = {p: full_corpus.n_tokens(p) for p in pile}
    for p in pile:  # split by token count
        assert s[p] == pytest.approx(0.08 * tok[p] / sum(tok.values()))
    assert sum(s.values()) == pytest.approx(1.0)
    assert set(s) == {"refinedweb", "starcoder", "pile_arxiv", "openwebmath", "dolma_pes2o", *pile}


def test_shipped_phase2_has_table2_weights(full_corpus):
    mix = load_mixture(REPO / "mixtures/phase2.toml", full_corpus)
    s = mix.shares
    rows = {"refinedweb": 39.8, "pile_wikipedia": 6.7, "pile_stackexchange": 4.8, "pile_arxiv": 1.0,
            "pile_rest": 5.1, "dolma_pes2o": 1.0, "ultratextbooks": 4.8, "starcoder": 19.6}
    for src, pct in rows.items():
        assert s[src] == pytest.approx(pct / 99.7), src
    groups = {7.3: ["xp3x", "oasst", "openhermes", "ultrachat", "oasst_octopack"],
              3.8: ["magicoder_oss", "magicoder_evol", "code290k_sharegpt", "commitpackft", "evol_codealpaca"],
              5.8: ["openwebmath", "algebraic_stack", "templategsm", "stackmathqa"]}
    for pct, members in groups.items():
        assert sum(s[m] for m in members) == pytest.approx(pct / 99.7)
        tok = {m: full_corpus.n_tokens(m) for m in members}
        for m in members:
            assert s[m] == pytest.approx(pct / 99.7 * tok[m] / sum(tok.values())), m
    assert set(s) == set(ALL_SOURCES)
    assert sum(s.values()) == pytest.approx(1.0)


def test_every_shipped_mixture_loads(full_corpus):
    files = sorted((REPO / "mixtures").glob("*.toml"))
    assert files
    for f in files:
        if f.stem.startswith("sample"):
            continue  # written for the sample corpus only
        load_mixture(f, full_corpus)


def test_ablation_mixtures_are_the_recipe_plus_a_quarter_of_stdlib(tmp_path_factory):
    """mixtures/ablation/phase{1,2}.toml: the recipe's weights unchanged and the standard library at 1/4 of the
    tokens (docs 40 %, code 60 % of it), over the ablation corpus (the 22 sources and the two local ones)."""
    sizes = {s: 200 + 37 * i for i, s in enumerate(ALL_SOURCES)} | {"stdlib_docs": 900, "stdlib_code": 4000}
    corpus = Corpus.open(make_corpus(tmp_path_factory.mktemp("abl"), sizes, vocab=300, val_tokens=40, mean_doc=20))
    recipe_corpus = Corpus.open(make_corpus(tmp_path_factory.mktemp("rec"), {s: sizes[s] for s in ALL_SOURCES},
                                            vocab=300, val_tokens=40, mean_doc=20))
    for phase in ("phase1", "phase2"):
        mix = load_mixture(REPO / "mixtures/ablation" / f"{phase}.toml", corpus).shares
        recipe = load_mixture(REPO / "mixtures" / f"{phase}.toml", recipe_corpus).shares
        assert mix["stdlib_docs"] + mix["stdlib_code"] == pytest.approx(0.25, abs=2e-3), phase
        assert mix["stdlib_docs"] / mix["stdlib_code"] == pytest.approx(0.4 / 0.6, rel=1e-2), phase
        rest = 1 - mix["stdlib_docs"] - mix["stdlib_code"]
        for src, share in recipe.items():
            assert mix[src] / rest == pytest.approx(share, rel=1e-9), (phase, src)


def test_equal_split_and_zero_weights(tmp_path, small_corpus):
    p = write(tmp_path, '[sources]\nweb = 2\n[groups.g]\nweight = 2\nmembers = ["math", "code"]\n'
                        'split = "equal"\n')
    mix = load_mixture(p, small_corpus)
    assert mix.shares == pytest.approx({"web": 0.5, "math": 0.25, "code": 0.25})
    p = write(tmp_path, '[sources]\nweb = 3\ncode = 0\nmath = 1\n')
    mix = load_mixture(p, small_corpus)
    assert mix.shares == pytest.approx({"web": 0.75, "math": 0.25})
    assert "code" not in mix.shares and mix.name == "m"


def test_fingerprint_follows_shares_not_formatting(tmp_path, small_corpus):
    a = load_mixture(write(tmp_path, '[sources]\nweb = 3\nmath = 1\n', "a.toml"), small_corpus)
    b = load_mixture(write(tmp_path, '# comment\n[sources]\nmath = 25\nweb = 75\n', "b.toml"), small_corpus)
    c = load_mixture(write(tmp_path, '[sources]\nweb = 1\nmath = 1\n', "c.toml"), small_corpus)
    assert a.fingerprint == b.fingerprint != c.fingerprint


BAD = [
    # (file text, pieces the message must contain)
    ('[sources]\nweb = 1\nwbe = 2\n', ["m.toml:3", "sources.wbe", "code, math, web", "fix"]),
    ('[sources]\nweb = -1\ncode = 1\n', ["m.toml:2", "sources.web", "negative", "fix"]),
    ('[sources]\nweb = 0\ncode = 0\n', ["m.toml", "every weight is zero", "fix"]),
    ('[sources]\n', ["m.toml", "every weight is zero"]),
    ('max_epoch = 3\n[sources]\nweb = 1\n', ["m.toml:1", "max_epoch", "max_epochs"]),
    ('[sources]\nweb = 1\n[groups.g]\nweight = 1\nmember = ["code"]\n', ["m.toml:5", "groups.g.member", "members"]),
    ('[sources]\nweb = 1\n[groups.g]\nweight = 1\nmembers = ["code", "cod"]\n',
     ["m.toml:5", "groups.g.members", "'cod'", "code, math, web"]),
    ('[groups.a]\nweight = 1\nmembers = ["code", "math"]\n[groups.b]\nweight = 1\nmembers = ["math"]\n',
     ["m.toml:6", "groups.b.members", "second group", "groups.a"]),
    ('[sources]\nmath = 1\n[groups.a]\nweight = 1\nmembers = ["code", "math"]\n',
     ["groups.a.members", "own weight", "sources.math"]),
    ('[sources]\nweb = "a lot"\n', ["m.toml:2", "sources.web", "must be a number"]),
    ('[sources]\nweb = 1\n[groups.g]\nweight = -2\nmembers = ["code"]\n', ["m.toml:4", "groups.g.weight", "negative"]),
    ('[sources]\nweb = 1\n[groups.g]\nmembers = ["code"]\n', ["groups.g.weight", "missing"]),
    ('[sources]\nweb = 1\n[groups.g]\nweight = 1\nmembers = ["code"]\nsplit = "tokenz"\n', ["m.toml:6", "split"]),
    ('[sources\nweb = 1\n', ["m.toml", "not valid TOML"]),
    ('max_epochs = 0\n[sources]\nweb = 1\n', ["m.toml:1", "max_epochs", "> 0"]),
]


@pytest.mark.parametrize("text,pieces", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_mixture_errors(tmp_path, small_corpus, text, pieces):
    p = write(tmp_path, text)
    with pytest.raises(MixtureError) as e:
        load_mixture(p, small_corpus)
    msg = str(e.value)
    for piece in pieces:
        assert piece in msg, (piece, msg)


def test_missing_file_and_empty_source(tmp_path):
    c = Corpus.open(make_corpus(tmp_path / "c", {"web": 100, "empty": 0}, vocab=50, val_tokens=0))
    with pytest.raises(MixtureError, match="cannot read"):
        load_mixture(tmp_path / "nope.toml", c)
    p = write(tmp_path, '[sources]\nweb = 1\nempty = 1\n')
    with pytest.raises(MixtureError, match="no train tokens"):
        load_mixture(p, c)


def test_check_tokenizer(tmp_path, small_corpus):
    check_tokenizer(small_corpus, vocab_size=300)
    check_tokenizer(small_corpus, vocab_size=300, tokenizer_sha256=small_corpus.tokenizer_sha256)
    with pytest.raises(ValueError, match="vocab_size is 300 but the model config has vocab_size 32000"):
        check_tokenizer(small_corpus, vocab_size=32000)
    with pytest.raises(ValueError, match="another tokenizer"):
        check_tokenizer(small_corpus, vocab_size=300, tokenizer_sha256="0" * 64)
    root = make_corpus(tmp_path / "t", {"web": 100}, vocab=50)
    c = Corpus.open(root)
    (root / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="replaced after the build"):
        check_tokenizer(c, vocab_size=50)


def test_corpus_errors(tmp_path):
    from trainer.data import CorpusError

    with pytest.raises(CorpusError, match="no manifest"):
        Corpus.open(tmp_path)
    root = make_corpus(tmp_path / "c", {"web": 100}, vocab=50)
    m = json.loads((root / "manifest.json").read_text())
    del m["tokenizer"]["vocab_size"]
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CorpusError, match=re.escape("tokenizer.'vocab_size'")):
        Corpus.open(root)
    root = make_corpus(tmp_path / "d", {"web": 100}, vocab=50)
    m = json.loads((root / "manifest.json").read_text())
    m["sources"]["web"]["splits"]["train"]["n_tokens"] += 1
    m["sources"]["web"]["splits"]["train"]["parts"][0]["n_tokens"] += 1
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CorpusError, match="manifest says"):
        Corpus.open(root).open_stream("web").n_docs


def test_part_from_another_tokenizer_is_refused(tmp_path):
    from trainer.data import CorpusError

    a = Corpus.open(make_corpus(tmp_path / "a", {"web": 200}, vocab=50))
    b = Corpus.open(make_corpus(tmp_path / "b", {"web": 200}, vocab=60))
    # b's part copied over a's: same counts in a's manifest would not catch it, the schema metadata does
    (a.root / "web/train/part-00000-00000.arrow").write_bytes((b.root / "web/train/part-00000-00000.arrow").read_bytes())
    with pytest.raises(CorpusError, match="another build"):
        a.open_stream("web").n_docs
