"""datatrove's web-crawl rules (Gopher quality and repetition, FineWeb) with the same verdicts, computed faster.

    from pipeline.stages.web_rules import (FastGopherQualityFilter, FastGopherRepetitionFilter,
                                           FastFineWebQualityFilter)
    steps = [FastGopherQualityFilter(language=RegexWordTokenizer()), FastGopherRepetitionFilter(...), ...]

Contract: each class takes its datatrove parent's arguments and returns, for every document, exactly what the
parent's ``filter`` returns (same keep/drop, same reason, same thresholds compared in the same order);
``tests/test_filters_fast.py`` checks that document by document on generated and on real text. What differs
is how the numbers are computed:

* the document's words are split once and shared by every filter of the chain (:func:`doc_words`: one
  entry keyed by the identity of ``doc.text``, so a filter that rewrites the text, as C4's line filter does,
  gets a fresh split);
* datatrove's per-character generator loops (a word's "is it all punctuation", "has it a letter") become
  per-word C calls: ``str.strip`` with the punctuation set, a compiled class of every alphabetic code point;
* n-grams are built with ``zip`` + ``str.join`` in C, not one slice and join per position in Python.

On real technical prose the Gopher quality rules were ~80% of the filter stage's time, almost all of it in
those two per-character loops.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from functools import cache
from itertools import compress, filterfalse, repeat

from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.utils.text import PUNCTUATION_SET, split_into_sentences
from datatrove.utils.word_tokenizers import load_word_tokenizer

#: ``str.strip`` takes the characters to strip as one string: a word is all punctuation iff it strips to ""
_PUNCT = "".join(sorted(PUNCTUATION_SET))

# the last text split, its splitter and its words: see doc_words
_LAST: list = [None, None, None]


def doc_words(doc: Document, language) -> list[str]:
    """``datatrove.utils.text.split_into_words(doc.text, language)``, split once per text for the whole chain.

    datatrove pulls one document through every step of a pipeline before it reads the next, so one cached
    entry serves the chain; it is keyed by the identity of the text object (no hashing of the text) and by
    the splitter.
    """
    text = doc.text
    if _LAST[0] is text and _LAST[1] == language:
        return _LAST[2]
    words = load_word_tokenizer(language).word_tokenize(text)
    _LAST[:] = [text, language, words]
    return words


@cache
def _has_letter():
    """``search`` of a regex class holding every code point for which ``str.isalpha`` is true in this
    Python's Unicode tables (so "has a letter" matches datatrove's ``any(c.isalpha() for c in w)``).

    Two classes: ``re`` compiles one of Basic Multilingual Plane code points into a bitmap; letters beyond
    it (a class ``re`` can only scan range by range) are looked at only for a character beyond it."""
    import numpy as np

    points = np.concatenate([np.arange(0xD800, dtype="<u4"), np.arange(0xE000, 0x110000, dtype="<u4")])
    letters = "".join(filter(str.isalpha, points.tobytes().decode("utf-32-le")))
    codes = np.frombuffer(letters.encode("utf-32-le"), "<u4").astype(np.int64)
    breaks = np.flatnonzero(np.diff(codes) != 1)
    spans = list(zip(np.r_[codes[0], codes[breaks + 1]].tolist(), np.r_[codes[breaks], codes[-1]].tolist()))

    def cls(pairs):
        return "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in pairs) + "]"

    bmp = [(a, min(b, 0xFFFF)) for a, b in spans if a <= 0xFFFF]
    astral = [(max(a, 0x10000), b) for a, b in spans if b > 0xFFFF]
    return re.compile(f"{cls(bmp)}|(?=[\\U00010000-\\U0010ffff]){cls(astral)}").search


#: how the alphabetic-word share counts words: datatrove's tokens (punctuation marks are words of their
#: own), or Gopher's own definition, whitespace-separated words (MassiveText; Dolma's Gopher tagger)
ALPHA_WORDS = ("tokens", "whitespace")


class FastGopherQualityFilter(GopherQualityFilter):
    """datatrove's ``GopherQualityFilter``, same verdicts; its per-character loops run as per-word C calls.

    ``alpha_words="whitespace"`` (not datatrove's) counts the share of words holding a letter over
    whitespace-separated words, as the Gopher paper does: over datatrove's tokens every comma, period and
    quote is a letterless word, and clean English prose with ordinary punctuation falls under the 0.8 floor
    (the Debian Social Contract: 0.77). Every other rule is unchanged."""

    def __init__(self, *args, alpha_words: str = "tokens", **kwargs):
        super().__init__(*args, **kwargs)
        if alpha_words not in ALPHA_WORDS:
            raise ValueError(f"alpha_words = {alpha_words!r}: use one of {', '.join(ALPHA_WORDS)}")
        self.alpha_words = alpha_words

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        words = doc_words(doc, self.language)
        n_words = len(words)
        # an alphabetic word is neither all punctuation (the set holds no letter) nor letterless: only the
        # others need a look at their characters
        others = list(filterfalse(str.isalpha, words))
        symbols = list(compress(others, map(operator.not_, map(str.strip, others, repeat(_PUNCT)))))
        n_non_symbol_words = n_words - len(symbols)
        if self.min_doc_words and n_non_symbol_words < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_non_symbol_words > self.max_doc_words:
            return False, "gopher_long_doc"
        # np.mean of the lengths: an exact integer sum divided once, as numpy does (nan when there are none)
        chars = sum(map(len, words)) - sum(map(len, symbols))
        avg = chars / n_non_symbol_words if n_non_symbol_words else float("nan")
        if self.min_avg_word_length and avg < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"
        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"
        lines = text.splitlines()
        if self.max_bullet_lines_ratio and (
                sum(map(str.startswith, map(str.lstrip, lines), repeat(("•", "-")))) / len(lines)
                > self.max_bullet_lines_ratio):
            return False, "gopher_too_many_bullets"
        if self.max_ellipsis_lines_ratio and (
                sum(map(str.endswith, map(str.rstrip, lines), repeat(("...", "…")))) / len(lines)
                > self.max_ellipsis_lines_ratio):
            return False, "gopher_too_many_end_ellipsis"
        if self.max_non_alpha_words_ratio:
            pool = words if self.alpha_words == "tokens" else text.split()
            rest = others if pool is words else list(filterfalse(str.isalpha, pool))
            if (len(pool) - len(rest) + sum(map(bool, map(_has_letter(), rest)))) / len(pool) \
                    < self.max_non_alpha_words_ratio:
                return False, "gopher_below_alpha_threshold"
        if self.min_stop_words and len(self.stop_words.intersection(set(words))) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True


def _ngrams(words: list[str], n: int, sep: str) -> list[str]:
    # zip + map + str.join run in C; datatrove builds each n-gram with a slice and a join in Python
    return list(map(sep.join, zip(*(words[i:] for i in range(n)))))


def _repeated_chars(grams: list[str], n: int) -> int:
    """datatrove's ``find_all_duplicate``: scan the n-grams; a repeat adds its length and skips the next
    n positions. Most documents repeat no n-gram, which one C-level set() settles without the scan."""
    m = len(grams)
    if len(set(grams)) == m:
        return 0
    seen: set[str] = set()
    repeated, idx = 0, 0
    while idx < m:
        g = grams[idx]
        if g in seen:
            repeated += len(g)
            idx += n
        else:
            seen.add(g)
            idx += 1
    return repeated


class FastGopherRepetitionFilter(GopherRepetitionFilter):
    """datatrove's ``GopherRepetitionFilter``, same verdicts (same n-gram strings, same order, same
    tie-breaking), with the shared word split and C-level n-gram building."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"
        paragraphs = self.paragraph_exp.split(text.strip())
        paragraphs_duplicates, char_duplicates = find_duplicates(paragraphs)
        if self.dup_para_frac and paragraphs_duplicates / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and char_duplicates / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"
        lines = self._line_splitter.split(text)
        line_duplicates, char_duplicates = find_duplicates(lines)
        if self.dup_line_frac and line_duplicates / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and char_duplicates / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"
        words = doc_words(doc, self.language)
        for n, n_frac in self.top_n_grams:
            grams = _ngrams(words, n, " ")
            if not grams:
                continue
            top, count = Counter(grams).most_common(1)[0]  # insertion order breaks ties, as in datatrove
            if len(top) * count / len(text) > n_frac:
                return False, f"top_{n}_gram"
        for n, n_frac in self.dup_n_grams:
            repeated = _repeated_chars(_ngrams(words, n, ""), n)
            if repeated / len(text) > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True


class FastFineWebQualityFilter(FineWebQualityFilter):
    """datatrove's ``FineWebQualityFilter``, same verdicts; its word count comes from the shared split."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        lines = [line for line in doc.text.split("\n") if line.strip() != ""]
        if len(lines) == 0:
            return False, "empty"
        ratio = sum(map(str.endswith, lines, repeat(self.stop_chars))) / len(lines)
        if ratio < self.line_punct_thr and not (ratio == 0 and self.line_punct_exclude_zero):
            return False, "line_punct_ratio"
        ratio = sum(1 for line in lines if len(line) <= self.short_line_length) / len(lines)
        if ratio > self.short_line_threshold:
            return False, "short_line_ratio"
        ratio = find_duplicates(lines)[1] / len(doc.text.replace("\n", ""))
        if ratio > self.char_duplicates_ratio:
            return False, "char_dup_ratio"
        words = doc_words(doc, self.language)
        new_line = doc.text.count("\n")
        if new_line / len(words) > self.new_line_ratio:
            return False, "list_ratio"
        return True


class FastC4QualityFilter(C4QualityFilter):
    """datatrove's ``C4QualityFilter``, same verdicts and same rewritten text. Sentences are counted only
    until ``min_num_sentences`` is reached (past it the count decides nothing), and the per-line counters
    are added to the stats once per document instead of once per line."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        lines = doc.text.splitlines() if self.split_paragraph else split_into_sentences(doc.text, self.language)
        spans = load_word_tokenizer(self.language).span_tokenize
        need = self.min_num_sentences if self.min_num_sentences != -1 else 0
        num_sentences = 0
        kept_lines = []
        counts: Counter = Counter()
        try:
            for line in lines:
                line = line.strip()
                words = line.split()
                counts["line-total"] += 1
                if self.max_word_length != -1 and any(len(word) > self.max_word_length for word in words):
                    counts["line-filter-too_long_word"] += 1
                    continue
                if self.remove_citations:
                    line = CITATION_REGEX.sub("", line)
                if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                    counts["line-filter-no_terminal_punc"] += 1
                    continue
                if len(words) < self.min_words_per_line:
                    counts["line-filter-too_few_words"] += 1
                    continue
                line_l = line.lower()
                if self.filter_lorem_ipsum and "lorem ipsum" in line_l:
                    return False, "lorem_ipsum"
                if self.filter_javascript and "javascript" in line_l:
                    counts["line-filter-javascript"] += 1
                    continue
                if self.filter_curly_bracket and "{" in line:
                    return False, "curly_bracket"
                if self.filter_policy and any(p in line_l for p in POLICY_SUBSTRINGS):
                    counts["line-filter-policy"] += 1
                    continue
                if num_sentences < need:
                    # split_into_sentences returns len(spans) parts, or the line whole when it has none
                    num_sentences += (len(spans(line)) or 1) if self.split_paragraph else 1
                kept_lines.append(line)
                counts["line-kept"] += 1
        finally:
            for key, n in counts.items():
                self.stat_update(key, value=n)
        if num_sentences < self.min_num_sentences:
            return False, "too_few_sentences"
        doc.text = ("\n" if self.split_paragraph else " ").join(kept_lines).strip()
        return True
