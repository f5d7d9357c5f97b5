"""FastGopherRepetitionFilter gives datatrove's GopherRepetitionFilter verdicts, reason for reason."""
import random
from collections import Counter

from datatrove.data import Document
from datatrove.pipeline.filters import GopherRepetitionFilter

from pipeline.stages.filter import FastGopherRepetitionFilter
from pipeline.text import RegexWordTokenizer

WORDS = [f"w{i}" + "xyz"[i % 3] * (i % 4) for i in range(400)] + ["the", "of", "and", "to", "a"] * 20


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


def test_same_verdicts_as_datatrove():
    splitter = RegexWordTokenizer()
    ours, theirs = FastGopherRepetitionFilter(language=splitter), GopherRepetitionFilter(language=splitter)
    got, want = [], []
    for i, text in enumerate(docs()):
        got.append(ours.filter(Document(text=text, id=str(i))))
        want.append(theirs.filter(Document(text=text, id=str(i))))
    assert got == want
    reasons = Counter(r[1] if isinstance(r, tuple) else "kept" for r in want)
    # the input exercises most rules, so equality above means something
    assert reasons["kept"] > 20 and len(reasons) >= 6, reasons


def test_same_verdicts_with_non_default_thresholds():
    kw = {"dup_line_frac": 0.1, "top_n_grams": ((2, 0.05), (3, 0.05)), "dup_n_grams": ((5, 0.02), (7, 0.02))}
    ours, theirs = FastGopherRepetitionFilter(**kw, language=RegexWordTokenizer()), \
        GopherRepetitionFilter(**kw, language=RegexWordTokenizer())
    for i, text in enumerate(docs(200, seed=1)):
        assert ours.filter(Document(text=text, id=str(i))) == theirs.filter(Document(text=text, id=str(i))), text
