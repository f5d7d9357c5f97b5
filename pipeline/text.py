"""Fast word and sentence splitting for datatrove's quality filters and MinHash.

datatrove's Gopher, C4 and FineWeb filters (and ``MinhashDedupSignature``) split words with a blank spaCy
pipeline, measured at ~0.5 MB/s per core: slower than everything else in the DAG together. Each of those
steps accepts a ``WordTokenizer`` instance in place of a language code (datatrove's ``load_word_tokenizer``
returns an instance unchanged), so :class:`RegexWordTokenizer` plugs in without touching datatrove.

What changes against spaCy's English tokenizer (see docs/readme/corpus.md):

* contractions stay one word (``don't`` is 1 word, spaCy makes ``do`` + ``n't``);
* a run of punctuation is one symbol (``?!`` is 1, spaCy usually splits it; ``...`` is 1 in both);
* URLs, e-mails and numbers with separators (``3.14``, ``1,000``) split at their punctuation, where spaCy keeps
  many of them whole;
* sentences end at terminal punctuation followed by a space or a line end, with no abbreviation list
  (``Dr. Smith`` ends a sentence here, spaCy's sentencizer does the same).

So word counts on ordinary prose differ by a few percent, and only documents near a threshold can change side.
"""

from __future__ import annotations

import re

from datatrove.utils.text import TERMINAL_PUNCTUATION
from datatrove.utils.word_tokenizers import WordTokenizer

# A word is a run of word characters, optionally joined by an apostrophe (contractions, possessives); any
# other non-space run is one symbol token. ``re`` runs this in C: ~40-80 MB/s per core on prose.
_WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]+")
_TERMINAL = "".join(sorted(TERMINAL_PUNCTUATION))
# A sentence runs up to terminal punctuation (with closing quotes/brackets) followed by whitespace, or to a
# line end, or to the end of the text.
_SENT_RE = re.compile(r"\S.*?(?:[" + re.escape(_TERMINAL) + r"]+[\"'”’)\]]*(?=\s|$)|(?=\n)|$)", re.S)


class RegexWordTokenizer(WordTokenizer):
    """A language-agnostic regex splitter for space-delimited scripts (not for zh/ja/th)."""

    def __init__(self, language: str = "en"):
        super().__init__(language)

    def word_tokenize(self, text: str) -> list[str]:
        return _WORD_RE.findall(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [text[a:b] for a, b in self.span_tokenize(text)]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans = []
        for m in _SENT_RE.finditer(text):
            a, b = m.span()
            while b > a and text[b - 1].isspace():
                b -= 1
            if b > a:
                spans.append((a, b))
        return spans

    # datatrove caches split results keyed on the tokenizer object (``lru_cache``), and pipelines are pickled
    # to worker processes: equal by value keeps both working.
    def __eq__(self, other):
        return type(other) is type(self) and other.language == self.language

    def __hash__(self):
        return hash((type(self).__name__, self.language))

    def __repr__(self):
        return f"RegexWordTokenizer({self.language!r})"


def word_splitter(name: str, language: str = "en"):
    """The word splitter a config names: ``regex`` (fast, default) or ``spacy`` (datatrove's default)."""
    if name == "regex":
        return RegexWordTokenizer(language)
    if name == "spacy":
        return language  # datatrove resolves a language code to its spaCy tokenizer
    raise ValueError(f"word_splitter = {name!r}: use \"regex\" (fast) or \"spacy\" (datatrove's default, slow)")
