"""The fast web rules (pipeline/stages/web_rules.py) give datatrove's verdicts, class by class and reason for
reason, on generated documents that exercise every rule and on real text (tests/fixtures/realtext); the
regex word splitter's chunked path gives the same tokens as its regex."""
import gzip
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter)

from pipeline.stages.web_rules import (FastC4QualityFilter, FastFineWebQualityFilter, FastGopherQualityFilter,
                                       FastGopherRepetitionFilter, doc_words)
from pipeline.text import _WORD_RE, RegexWordTokenizer

WORDS = [f"w{i}" + "xyz"[i % 3] * (i % 4) for i in range(400)] + ["the", "of", "and", "to", "a"] * 20
FIXTURE = Path(__file__).parent / "fixtures" / "realtext" / "realtext.jsonl.gz"


def docs(n=400, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        lines = []
        for _ in range(rng.randint(1, 14)):
            kind = rng.random()
            if lines and kind < 0.15:
                lines.append(rng.choice(lines))                       # repeated line
            elif kind < 0.3:
                phrase = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
                lines.append(" ".join([phrase] * rng.randint(2, 5)))  # repeated n-grams
            else:
                lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) + ".")
        sep = "\n\n" if rng.random() < 0.3 else "\n"
        out.append(sep.join(lines))
    return out + ["", "a", "a a a a a a a a a a a a", "one two. one two. one two."]


def symbol_docs(n=300, seed=2):
    """Documents that move Gopher's quality rules: symbols, digits, bullets, ellipses, hashes, non-Latin."""
    rng = random.Random(seed)
    pieces = WORDS[:60] + ["—", "...", "…", "#", "3.14", "1,000", "(x)", "[1]", "x²", "½", "“quoted”", "naïve",
                           "東京", "Ⅷ", "\u2028", "e.g.", "U.S.", "don't", "--", "https://a.b/c", "__init__", "-1"]
    out = []
    for _ in range(n):
        lines = []
        for _ in range(rng.randint(1, 30)):
            head = rng.choice(["", "", "- ", "• ", "# ", "  "])
            tail = rng.choice(["", ".", "...", "…", "!"])
            lines.append(head + " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 25))) + tail)
        out.append("\n".join(lines))
    return out


def real_texts():
    return [json.loads(line)["text"] for line in gzip.open(FIXTURE, "rt")]


def same_verdicts(ours, theirs, texts, compare_text=False):
    got, want = [], []
    for i, text in enumerate(texts):
        a, b = Document(text=text, id=str(i)), Document(text=text, id=str(i))
        got.append(ours.filter(a))
        want.append(theirs.filter(b))
        if compare_text:
            assert a.text == b.text, text
    assert got == want
    return Counter(r[1] if isinstance(r, tuple) else "kept" for r in want)


def test_repetition_same_verdicts_as_datatrove():
    splitter = RegexWordTokenizer()
    reasons = same_verdicts(FastGopherRepetitionFilter(language=splitter), GopherRepetitionFilter(language=splitter),
                            docs() + real_texts())
    # the input exercises most rules, so equality above means something
    assert reasons["kept"] > 20 and len(reasons) >= 6, reasons


def test_repetition_same_verdicts_with_non_default_thresholds():
    kw = {"dup_line_frac": 0.1, "top_n_grams": ((2, 0.05), (3, 0.05)), "dup_n_grams": ((5, 0.02), (7, 0.02))}
    same_verdicts(FastGopherRepetitionFilter(**kw, language=RegexWordTokenizer()),
                  GopherRepetitionFilter(**kw, language=RegexWordTokenizer()), docs(200, seed=1))


@pytest.mark.parametrize("kw", [{}, {"max_non_alpha_words_ratio": 0.6, "min_doc_words": 5, "min_stop_words": 1},
                                {"min_doc_words": None, "max_avg_word_length": 6, "max_bullet_lines_ratio": 0.2}])
def test_quality_same_verdicts_as_datatrove(kw):
    splitter = RegexWordTokenizer()
    texts = docs() + symbol_docs() + real_texts()
    if kw.get("min_doc_words", 50) is None:
        texts = [t for t in texts if t.strip()]  # datatrove divides by the word count: no empty documents
    reasons = same_verdicts(FastGopherQualityFilter(**kw, language=splitter),
                            GopherQualityFilter(**kw, language=splitter), texts)
    assert reasons["kept"] > 10 and len(reasons) >= 4, reasons


def test_quality_same_verdicts_with_spacy():
    pytest.importorskip("spacy")
    texts = symbol_docs(40) + real_texts()[:12]
    same_verdicts(FastGopherQualityFilter(language="en"), GopherQualityFilter(language="en"), texts)


def test_fineweb_same_verdicts_as_datatrove():
    splitter = RegexWordTokenizer()
    reasons = same_verdicts(FastFineWebQualityFilter(language=splitter), FineWebQualityFilter(language=splitter),
                            docs() + symbol_docs() + real_texts())
    assert len(reasons) >= 4, reasons


@pytest.mark.parametrize("kw", [{}, {"filter_no_terminal_punct": False},
                                {"filter_curly_bracket": False, "min_num_sentences": 2, "remove_citations": False},
                                {"split_paragraph": False, "filter_no_terminal_punct": False}])
def test_c4_same_verdicts_text_and_stats_as_datatrove(kw):
    splitter = RegexWordTokenizer()
    ours, theirs = FastC4QualityFilter(language=splitter, **kw), C4QualityFilter(language=splitter, **kw)
    texts = docs() + symbol_docs() + real_texts() + ["Lorem ipsum dolor sit amet, consectetur adipiscing."]
    same_verdicts(ours, theirs, texts, compare_text=True)  # C4 rewrites the text: the rewrite must match too
    assert {k: v.total for k, v in ours.stats.stats.items()} == {k: v.total for k, v in theirs.stats.stats.items()}


def test_alpha_words_whitespace_counts_words_as_gopher_does():
    # clean prose whose punctuation tokens pull datatrove's token share under 0.8
    text = ("\"Free\", they said, \"is free\". We, the makers, agree: it's ours, and yours, too. " * 12).strip()
    tokens = FastGopherQualityFilter(language=RegexWordTokenizer())
    gopher = FastGopherQualityFilter(language=RegexWordTokenizer(), alpha_words="whitespace")
    assert tokens.filter(Document(text=text, id="x")) == (False, "gopher_below_alpha_threshold")
    assert gopher.filter(Document(text=text, id="x")) is True
    digits = " ".join(["2023", "1999", "4096", "the", "year"] * 30)  # letterless words are still letterless
    assert gopher.filter(Document(text=digits, id="y")) == (False, "gopher_below_alpha_threshold")
    with pytest.raises(ValueError, match="alpha_words"):
        FastGopherQualityFilter(alpha_words="spaces")


def test_word_split_shared_until_the_text_changes():
    splitter = RegexWordTokenizer()
    doc = Document(text="one two three", id="x")
    first = doc_words(doc, splitter)
    assert doc_words(doc, splitter) is first          # the chain's later filters reuse the split
    doc.text = "four five"                            # C4 rewrites doc.text: a fresh split
    assert doc_words(doc, splitter) == ["four", "five"]


TRICKY = ["see https://a.b/c?d=1. U.S. os.path __init__ 3.14", "Don't stop, it's fine... ok?!", "x² ½ Ⅷ 東京 naïve",
          "(see f(x) a[-2]) -1 --flag 1,000. 12:30 e.g. .py", "a\u2028b\x1cc\x85d\u00a0e \t\nf", "word) word): 'quote'",
          "", "   ", "_leading trailing_ __dunder__", "3d 12abc x2 é\u0301"]


def test_regex_split_by_chunks_equals_the_regex():
    splitter = RegexWordTokenizer()
    for text in TRICKY + real_texts() + symbol_docs(100):
        assert splitter.word_tokenize(text) == _WORD_RE.findall(text), text
