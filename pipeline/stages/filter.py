"""Quality filters with a rule family per source: ``web`` (crawl), ``prose`` (curated text), ``code``, ``chat``.

Config (``[filters]`` in the corpus TOML; every key optional)::

    [filters.policy]             # source -> rule family; a source not listed takes its catalog family
    refinedweb = "web"           # (pipeline.sources: web, code or chat), so list every source you build
    pile_arxiv = "prose"
    [filters.subsets.pile_rest]  # one source, a family per subset, by a metadata field
    field = "pile_set_name"
    rules = {"Pile-CC" = "web", Github = "code"}   # other subsets: the source's [filters.policy] family
    [filters.web]                # datatrove's crawl rules (Gopher, C4, FineWeb), fast and with the same verdicts
    name = "web_v2"              # bump when you change a rule that changes the output (dolma-style)
    word_splitter = "regex"      # "regex" (fast, pipeline/text.py) or "spacy" (datatrove's default)
    gopher_quality = {alpha_words = "whitespace"}  # GopherQualityFilter kwargs (+ alpha_words: web_rules.py);
                                 # false disables the filter
    gopher_repetition = {}       # GopherRepetitionFilter kwargs
    c4 = {filter_no_terminal_punct = false}   # C4QualityFilter kwargs
    fineweb = {}                 # FineWebQualityFilter kwargs
    [filters.prose]              # ProseSanityFilter fields: min_words, max_chars, encoding, boilerplate, ...
    [filters.code]               # CodeFilter fields: max_line_length, max_mean_line_length, ...
    [filters.chat]               # ChatSanityFilter fields: max_chars, max_replacement_ratio, ...
    [filters.langid]             # optional fastText language ID (off unless `model` is a local file)

Why families: the web rules were built for raw CommonCrawl (Gopher, C4, FineWeb, Dolma all apply them to
crawl only); on curated papers, LaTeX, math and textbooks they fail by construction (Gopher's alphabetic-word
share, C4's curly brackets), so those sources get the ``prose`` sanity rules: empty, bad encoding, extreme
length, boilerplate. The shipped configs give each source its family with a one-line reason.

Every dropped document is counted under a reason (``dropped_<reason>`` in datatrove's stats, then in the
manifest's accounting): datatrove's own reasons for the web rules (``gopher_short_doc``, ``too_few_sentences``,
``line_punct_ratio`` ...), ``prose_*``, ``code_*`` and ``chat_*`` for ours, ``empty`` everywhere.
Decontamination against evaluation sets is a stage of its own (``pipeline/stages/decontaminate.py``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters import LanguageFilter
from datatrove.pipeline.filters.base_filter import BaseFilter
from jetmoe_core.config import from_table

from pipeline.stages.base import Job, Stage, register
from pipeline.stages.documents import docs_reader, docs_writer, n_input_files
from pipeline.stages.web_rules import (FastC4QualityFilter, FastFineWebQualityFilter, FastGopherQualityFilter,
                                       FastGopherRepetitionFilter)
from pipeline.text import word_splitter

#: the rule families a source can be given, cheapest first
RULE_FAMILIES = ("prose", "chat", "code", "web")


def _check_family(family: Any, where: str) -> None:
    if family not in RULE_FAMILIES:
        raise ValueError(f"{where}: {family!r} is not a rule family; use one of {', '.join(RULE_FAMILIES)}")


def _check_kwargs(step_cls, kwargs: Any, where: str) -> dict | None:
    """``false`` disables a datatrove filter; a table is its keyword arguments, checked against its signature."""
    if kwargs is False:
        return None
    if kwargs is True:
        return {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"[{where}] must be a table of {step_cls.__name__} arguments or false")
    params = {name for c in step_cls.__mro__ if "__init__" in vars(c) and c is not object
              for name, p in inspect.signature(c.__init__).parameters.items()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} - {"self", "exclusion_writer", "language"}
    unknown = sorted(set(kwargs) - params)
    if unknown:
        raise ValueError(f"[{where}] unknown {step_cls.__name__} argument(s) {unknown}; known: {sorted(params)}")
    out = dict(kwargs)
    for k, v in out.items():  # TOML gives lists where datatrove expects tuples (n-gram thresholds, stop chars)
        if isinstance(v, list):
            out[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    return out


@dataclass
class WebFilters:
    """Web crawl (RefinedWeb, the Pile's CommonCrawl subset): datatrove's Gopher, C4 and FineWeb rules."""
    name: str = "web_v1"
    #: "regex" (pipeline/text.py, ~100x faster) or "spacy" (datatrove's default)
    word_splitter: str = "regex"
    language: str = "en"
    gopher_repetition: Any = field(default_factory=dict)
    gopher_quality: Any = field(default_factory=dict)
    #: C4's rules; C4QualityFilter also deletes lines (no terminal punctuation, "javascript", citations)
    c4: Any = field(default_factory=dict)
    fineweb: Any = field(default_factory=dict)


@dataclass
class ProseFilters:
    """Curated prose, papers and math (peS2o, arXiv, Wikipedia, StackExchange, OpenWebMath, UltraTextbooks):
    sanity only. Their makers filtered them already; what is left to catch is what is broken."""
    name: str = "prose_v1"
    #: fewer whitespace-separated words is no document (Dolma drops Wikipedia pages under 25 words; peS2o's
    #: own floors are 50 for abstracts and 500 for papers)
    min_words: int = 25
    #: more characters is a dump (a table, a log, a book in one record), not a document
    max_chars: int = 2_000_000
    #: share of U+FFFD replacement characters above which the text was decoded wrongly
    max_replacement_ratio: float = 0.001
    #: share of C0 control characters other than tab, newline, carriage return (binary read as text)
    max_control_ratio: float = 0.001
    #: placeholder text that no real document contains (case-insensitive substrings)
    boilerplate: list[str] = field(default_factory=lambda: ["lorem ipsum dolor"])
    #: share of characters in lines that repeat an earlier line (an extraction that looped); Gopher uses 0.2
    #: on the web, where repeated navigation is the norm; tables and LaTeX repeat short lines legitimately
    max_dup_line_char_frac: float = 0.5


@dataclass
class CodeFilters:
    """Code sources (StarCoder, AlgebraicStack, CommitPackFT): the StarCoder/Codex-style rules."""
    name: str = "code_v1"
    #: drop a file whose longest line is longer (minified or data)
    max_line_length: int = 1000
    #: drop a file whose mean line length is longer
    max_mean_line_length: float = 100.0
    #: drop a file whose share of alphanumeric characters is lower (binary-ish, encoded data)
    min_alnum_fraction: float = 0.25
    min_chars: int = 1
    max_chars: int = 1_000_000
    #: markers of generated files, looked for (case-insensitive) in the first ``autogen_head_lines`` lines
    autogen_markers: list[str] = field(default_factory=lambda: [
        "auto-generated", "autogenerated", "automatically generated", "generated by", "do not edit",
        "code generated by"])
    autogen_head_lines: int = 5


@dataclass
class ChatFilters:
    """Instruction and chat sets: sanity only, their text is curated already."""
    name: str = "chat_v1"
    max_chars: int = 200_000
    #: share of U+FFFD replacement characters above which the text was decoded wrongly
    max_replacement_ratio: float = 0.001
    #: regexes that betray a conversation rendered wrongly (raw Python/JSON message objects, empty turns)
    broken_patterns: list[str] = field(default_factory=lambda: [
        r"""\{\s*['"](?:role|from|content|value)['"]\s*:""", r"^(?:None|nan|null)$",
        r"<\|(?:user|assistant|system)\|>\s*</s>"])


@dataclass
class LangIdOptions:
    """The ``[langid]`` table: fastText language ID, only when a local model file is given (no downloads)."""
    #: path to a fastText LID model (lid.176.bin or GlotLID model.bin); "" = off
    model: str = ""
    languages: list[str] = field(default_factory=lambda: ["en"])
    threshold: float = 0.65
    #: rule families it applies to (code and chat sets are often multilingual by design)
    families: list[str] = field(default_factory=lambda: ["web"])


@dataclass
class SubsetRules:
    """``[filters.subsets.<source>]``: a rule family per subset of one source, read from a metadata field."""
    #: the document metadata key that names the subset (the Pile: "pile_set_name")
    field: str = ""
    #: subset value -> rule family; any other value takes the source's [filters.policy] family
    rules: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.field:
            raise ValueError("field: name the metadata key that holds the subset, e.g. \"pile_set_name\"")
        for value, family in self.rules.items():
            _check_family(family, f"rules.{value}")


@dataclass
class FilterOptions:
    """The ``[filters]`` table."""
    web: WebFilters = field(default_factory=WebFilters)
    prose: ProseFilters = field(default_factory=ProseFilters)
    code: CodeFilters = field(default_factory=CodeFilters)
    chat: ChatFilters = field(default_factory=ChatFilters)
    #: source -> rule family; a source not listed takes its catalog family (pipeline.sources)
    policy: dict[str, str] = field(default_factory=dict)
    #: source -> a rule family per subset (see SubsetRules)
    subsets: dict[str, SubsetRules] = field(default_factory=dict)
    #: ``[filters.langid]``: language ID, off unless a local model file is given
    langid: LangIdOptions = field(default_factory=LangIdOptions)
    #: tables keyed by source name: the config loader checks each name against the catalog and the config's own
    SOURCE_KEYED = ("policy", "subsets")

    def __post_init__(self):
        # a FilterOptions made in code may hold plain dicts for its nested tables (the config loader types them)
        for name, cls in (("web", WebFilters), ("prose", ProseFilters), ("code", CodeFilters),
                          ("chat", ChatFilters), ("langid", LangIdOptions)):
            setattr(self, name, from_table(cls, getattr(self, name) or {}, source="FilterOptions",
                                           where=f"filters.{name}"))
        self.subsets = {s: from_table(SubsetRules, t, source="FilterOptions", where=f"filters.subsets.{s}")
                        for s, t in self.subsets.items()}
        for src, fam in self.policy.items():
            _check_family(fam, f"[filters.policy] {src}")
        for fam in self.langid.families:
            _check_family(fam, "[filters.langid] families")

    def validate(self) -> None:
        """Checks the config loader runs when the file is read, so that a bad value never waits for the
        filter stage to start: the datatrove arguments, the regexes, the thresholds. The sources the policy and
        the subsets name are checked by the config loader (``SOURCE_KEYED``), which knows the config's own."""
        if self.web.word_splitter not in ("regex", "spacy"):
            raise ValueError(f"[filters.web] word_splitter = {self.web.word_splitter!r}: use \"regex\" or \"spacy\"")
        for key, cls in (("gopher_quality", FastGopherQualityFilter), ("gopher_repetition", FastGopherRepetitionFilter),
                         ("c4", FastC4QualityFilter), ("fineweb", FastFineWebQualityFilter)):
            _check_kwargs(cls, getattr(self.web, key), f"filters.web.{key}")
        for i, pattern in enumerate(self.chat.broken_patterns):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"[filters.chat] broken_patterns[{i}] = {pattern!r} is not a regex: {e}") from None
        if not 0 <= self.langid.threshold <= 1:
            raise ValueError(f"[filters.langid] threshold must be in [0, 1], got {self.langid.threshold}")

    def family(self, source: str, specs: dict | None = None) -> str:
        """The source's rule family: [filters.policy], else its catalog family."""
        if source in self.policy:
            return self.policy[source]
        if specs and source in specs:
            return specs[source].family
        from pipeline.sources import get_source  # imported late: the source catalog is not needed to run a filter

        return get_source(source).family

    def families_of(self, source: str, specs: dict | None = None) -> list[str]:
        """Every rule family the source's documents can meet (its own, then its subsets' in order)."""
        out = [self.family(source, specs)]
        sub = self.subsets.get(source)
        for fam in (sub.rules.values() if sub else ()):
            if fam not in out:
                out.append(fam)
        return out


class EmptyFilter(BaseFilter):
    name = "∅ empty"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return (False, "empty") if not doc.text or not doc.text.strip() else True


def _replacement_share(text: str) -> float:
    return text.count("\ufffd") / len(text)


#: C0 controls except \t \n \r, and DEL: text decoded from binary, or a broken converter
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ProseSanityFilter(BaseFilter):
    """What is broken in curated text: too short or too long, mis-decoded, placeholder, looping extraction."""

    name = "📄 prose sanity"

    def __init__(self, opts: ProseFilters | None = None, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.o = opts or ProseFilters()
        self._boilerplate = [b.lower() for b in self.o.boilerplate]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text, o = doc.text, self.o
        if len(text) > o.max_chars:
            return False, "prose_too_long"
        if len(text.split()) < o.min_words:
            return False, "prose_too_short"
        if _replacement_share(text) > o.max_replacement_ratio:
            return False, "prose_bad_encoding"
        if len(_CONTROL_RE.findall(text)) > o.max_control_ratio * len(text):
            return False, "prose_control_chars"
        if self._boilerplate:
            low = text.lower()
            if any(b in low for b in self._boilerplate):
                return False, "prose_boilerplate"
        seen: set[str] = set()
        repeated = 0
        for line in text.splitlines():
            if line.strip():
                if line in seen:
                    repeated += len(line)
                else:
                    seen.add(line)
        if repeated / len(text) > o.max_dup_line_char_frac:
            return False, "prose_repeated_lines"
        return True


class CodeFilter(BaseFilter):
    """Line-length, alphanumeric-share, size and generated-file rules for source code."""

    name = "💻 code rules"

    def __init__(self, opts: CodeFilters | None = None, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.o = opts or CodeFilters()
        self._markers = [m.lower() for m in self.o.autogen_markers]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text, o = doc.text, self.o
        n = len(text)
        if n < o.min_chars:
            return False, "code_too_small"
        if n > o.max_chars:
            return False, "code_too_large"
        lines = text.splitlines() or [""]
        if max(map(len, lines)) > o.max_line_length:
            return False, "code_max_line_length"
        if n / len(lines) > o.max_mean_line_length:
            return False, "code_mean_line_length"
        # a per-character str.isalnum loop is the slow part; deleting word runs with a regex stays in C
        alnum = n - len(_WORD_RUN_RE.sub("", text))
        if alnum / n < o.min_alnum_fraction:
            return False, "code_alnum_fraction"
        head = "\n".join(lines[: o.autogen_head_lines]).lower()
        if any(m in head for m in self._markers):
            return False, "code_autogenerated"
        return True


_WORD_RUN_RE = re.compile(r"\w+")  # letters, digits and "_" (identifiers count as alphanumeric)


class ChatSanityFilter(BaseFilter):
    """Only catches what is broken: too long, mis-decoded, or a conversation rendered wrongly."""

    name = "💬 chat sanity"

    def __init__(self, opts: ChatFilters | None = None, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.o = opts or ChatFilters()
        self._broken = [re.compile(p, re.M) for p in self.o.broken_patterns]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if len(text) > self.o.max_chars:
            return False, "chat_too_long"
        if _replacement_share(text) > self.o.max_replacement_ratio:
            return False, "chat_bad_encoding"
        if any(p.search(text) for p in self._broken):
            return False, "chat_broken_rendering"
        return True


def web_filters(o: WebFilters) -> list:
    splitter = word_splitter(o.word_splitter, o.language)
    steps = []
    # quality first: its length gate gives short documents a plain reason before the n-gram rules see them
    for key, cls in (("gopher_quality", FastGopherQualityFilter), ("gopher_repetition", FastGopherRepetitionFilter),
                     ("c4", FastC4QualityFilter), ("fineweb", FastFineWebQualityFilter)):
        kw = _check_kwargs(cls, getattr(o, key), f"filters.web.{key}")
        if kw is not None:
            steps.append(cls(language=splitter, **kw))
    return steps


class _LocalFastTextLID:
    """datatrove's fastText LID reading a local model file (its FT176/GlotLID backends download theirs)."""

    def __init__(self, path: str, languages: list[str]):
        from datatrove.utils.lid import FastTextLID

        self._lid = FastTextLID(languages)
        self.path = path

    def predict(self, doc):
        if self._lid._model is None:
            from fasttext.FastText import _FastText
            self._lid._model = _FastText(self.path)
        return self._lid.predict(doc)


class LangIdFilter(LanguageFilter):
    """datatrove's LanguageFilter, dropping under a reason (``language_not_en``): its own drops carry none."""

    def filter(self, doc):
        return True if super().filter(doc) else (False, "language_not_" + "_".join(self.languages))


def langid_filter(o: LangIdOptions):
    path = Path(o.model).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"[filters.langid] model = {o.model!r}: no such file; give a fastText LID model "
                                f"(e.g. lid.176.bin) or set model = \"\" to turn language ID off")
    step = LangIdFilter(languages=list(o.languages), language_threshold=o.threshold)
    step.model = _LocalFastTextLID(str(path), list(o.languages))
    return step


def rule_steps(family: str, opts: FilterOptions) -> list:
    """The rule steps of one family, in order (language ID first where it applies)."""
    _check_family(family, "rule_steps")
    steps: list = []
    if opts.langid.model and family in opts.langid.families:
        steps.append(langid_filter(opts.langid))
    if family == "web":
        steps += web_filters(opts.web)
    elif family == "prose":
        steps.append(ProseSanityFilter(opts.prose))
    elif family == "code":
        steps.append(CodeFilter(opts.code))
    else:
        steps.append(ChatSanityFilter(opts.chat))
    return steps


def family_filters(family: str, opts: FilterOptions) -> list:
    """The filter steps of one rule family: the empty check, then its rules."""
    return [EmptyFilter(), *rule_steps(family, opts)]


class SubsetRouter(BaseFilter):
    """Applies a rule family chosen per document by a metadata field (the Pile's ``pile_set_name``): one
    source whose subsets are of different kinds (CommonCrawl pages, GitHub files, papers) is filtered as
    each kind is. A drop is counted under the chosen rule's own reason."""

    name = "🔀 rules by subset"

    def __init__(self, field: str, chains: dict[str, list], default: list, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.field, self.chains, self.default = field, chains, default

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        for step in self.chains.get(doc.metadata.get(self.field), self.default):
            res = step.filter(doc)
            keep, reason = res if isinstance(res, tuple) else (res, None)
            if not keep:
                return False, reason or step.name
        return True


def source_filters(source: str, opts: FilterOptions, specs: dict | None = None) -> list:
    """Every filter step of one source: the empty check, then its family's rules (or its subsets' rules)."""
    family = opts.family(source, specs)
    sub = opts.subsets.get(source)
    if sub:
        chains = {value: rule_steps(fam, opts) for value, fam in sub.rules.items()}
        return [EmptyFilter(), SubsetRouter(sub.field, chains, rule_steps(family, opts))]
    return family_filters(family, opts)


@register
class FilterStage(Stage):
    name = "filter"
    # v3: a rule family per source ([filters.policy], subsets), prose sanity rules; the web rules give the
    # same verdicts as v2
    version = "v3"
    after = ("format",)
    scope = "source"
    section = "filters"
    Options = FilterOptions

    def __init__(self, ctx, source=None):
        super().__init__(ctx, source)
        opts = self.options or FilterOptions()
        fams = opts.families_of(self.source, self.ctx.specs)
        # the rule sets' names are part of the version: changing a family's rules reruns its sources
        self.version = "+".join([type(self).version, *(getattr(opts, f).name for f in fams)])

    def jobs(self) -> list[Job]:
        opts = self.options or FilterOptions()
        steps = source_filters(self.source, opts, self.ctx.specs)
        src = self.input_dir("format")
        return [Job("filter", [docs_reader(src), *steps, docs_writer(self.output_dir)],
                    tasks=n_input_files(src), counts=True)]
