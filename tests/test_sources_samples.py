"""Every adapter on its embedded sample: layout, fields, ids, rendering, the Pile split, the dirt."""

import fnmatch
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from datatrove.data import Document

from pipeline.sources import SAMPLES_DIR, SOURCES, ChatTemplate, Rejected, get_source, input_groups
from pipeline.sources.web import PILE_REST, PILE_ROUTES

REPO = Path(__file__).resolve().parent.parent


def _sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES_DIR.rglob("*") if p.is_file() and p.suffix != ".py"
                  and "__pycache__" not in p.parts)


_CACHE: dict = {}


def read_group(key: str, template: ChatTemplate | None = None):
    """(documents by source, rejects by source) for one input group read from the samples."""
    ck = (key, template)
    if ck not in _CACHE:
        spec = input_groups(SOURCES)[key][0]
        docs, rejects = defaultdict(list), defaultdict(list)
        for path, rel in spec.local_files(SAMPLES_DIR):
            for item in spec.read(path, relpath=rel, template=template):
                if isinstance(item, Rejected):
                    rejects[item.source].append(item)
                else:
                    assert isinstance(item, Document)
                    docs[item.metadata["source"]].append(item)
        _CACHE[ck] = (docs, rejects)
    return _CACHE[ck]


def read_source(name: str, template: ChatTemplate | None = None):
    docs, rejects = read_group(get_source(name).input_group, template)
    return docs[name], rejects[name]


def test_every_pattern_matches_a_sample_and_every_sample_has_a_source():
    files = _sample_files()
    assert files
    owned = Counter()
    for name, spec in SOURCES.items():
        base = SAMPLES_DIR / spec.repo_id
        rels = [p.relative_to(base).as_posix() for p in files if base in p.parents]
        # matched the way huggingface_hub's allow_patterns match: fnmatch on the path in the repo
        hits = [r for r in rels if any(fnmatch.fnmatch(r, pat) for pat in spec.allow_patterns)]
        assert hits, f"{name}: no sample under {base} matches {spec.allow_patterns}"
        assert [rel for _, rel in spec.local_files(SAMPLES_DIR)] == sorted(hits)
        for r in hits:
            owned[(spec.repo_id, r)] += 1
    for p in files:
        rel = p.relative_to(SAMPLES_DIR).as_posix()
        assert any(rel == f"{repo}/{r}" for repo, r in owned), f"sample file {rel} belongs to no source"


def test_sample_size_budget():
    total = sum(p.stat().st_size for p in _sample_files())
    assert total <= 10 * 1024 * 1024, total
    for name in ("refinedweb", "starcoder"):
        docs, _ = read_source(name)
        assert sum(len(d.text.encode()) for d in docs) >= 1_000_000, name


@pytest.mark.parametrize("name", list(SOURCES))
def test_each_source_reads_its_sample(name):
    docs, rejects = read_source(name)
    assert len(docs) >= 25, f"{name}: only {len(docs)} documents"
    ids = [d.id for d in docs]
    for d in docs:
        assert d.text.strip()
        assert d.metadata["source"] == name
        json.dumps(d.metadata)  # metadata must survive datatrove's JSONL writer
    for r in rejects:
        assert r.source == name and r.reason and r.detail
        assert r.raw is None or len(r.raw) <= 4200
    # unique within the source, except the deliberate exact re-uploads that keep their dataset id
    dup = {k: v for k, v in Counter(ids).items() if v > 1}
    assert name in ("dolma_pes2o", "code290k_sharegpt") or not dup, (name, dup)
    assert len(dup) <= 1


def test_reading_is_deterministic():
    spec = get_source("stackmathqa")
    (path, rel), = spec.local_files(SAMPLES_DIR)
    a = [(x.id, x.text) if isinstance(x, Document) else x for x in spec.read(path, relpath=rel)]
    b = [(x.id, x.text) if isinstance(x, Document) else x for x in spec.read(path, relpath=rel)]
    assert a == b


# -- fields and ids per adapter ---------------------------------------------------------------------------
def test_refinedweb_fields_and_dirt():
    docs, rejects = read_source("refinedweb")
    d = docs[0]
    assert d.id.startswith("data/train-00000-of-05534-") and "#" in d.id
    assert d.metadata["url"].startswith("https://") and d.metadata["dump"].startswith("CC-MAIN-")
    assert "timestamp" in d.metadata
    texts = Counter(x.text for x in docs)
    assert any(c > 1 for c in texts.values()), "exact duplicates expected"
    assert any(len(t) < 40 for t in texts), "very short pages expected"
    assert any("Cookie" in t or "cookies" in t for t in texts), "boilerplate expected"
    assert any("bibliothèque" in t for t in texts) and any("Stadtverwaltung" in t for t in texts)


def test_starcoder_fields():
    docs, rejects = read_source("starcoder")
    assert all(d.id.isdigit() for d in docs)  # the dataset's own id
    assert {d.metadata["lang"] for d in docs} == {"python"}
    assert all("/" in d.metadata["repo"] and d.metadata["path"].endswith(".py") for d in docs)
    assert [r.reason for r in rejects] == ["empty_text"]  # the blank __init__.py
    assert any(max(map(len, d.text.splitlines() or [""])) > 5000 for d in docs), "a generated long-line file"


def test_pes2o_fields():
    docs, rejects = read_source("dolma_pes2o")
    assert all(d.id.isdigit() for d in docs)
    assert {d.metadata["subset"] for d in docs} <= {"s2orc/train", "s2ag/train"}
    assert {r.reason for r in rejects} == {"invalid_json", "missing_field"}
    assert any(":8:" in r.detail for r in rejects if r.reason == "invalid_json")


def test_pile_split_routes_by_pile_set_name():
    docs, rejects = read_group("pile")
    assert set(docs) == {"pile_wikipedia", "pile_stackexchange", "pile_arxiv", "pile_rest"}
    for src, ds in docs.items():
        for d in ds:
            assert PILE_ROUTES.get(d.metadata["pile_set_name"], PILE_REST) == src
    rest_sets = {d.metadata["pile_set_name"] for d in docs["pile_rest"]}
    assert {"Github", "DM Mathematics", "EuroParl"} <= rest_sets
    assert not rest_sets & set(PILE_ROUTES)
    # every bad record counts against pile_rest, including the one without meta (unroutable)
    assert {k for k, v in rejects.items() if v} == {"pile_rest"}
    reasons = Counter(r.reason for r in rejects["pile_rest"])
    assert reasons == {"missing_field": 1, "invalid_json": 1, "invalid_utf8": 1, "wrong_type": 1}
    miss = next(r for r in rejects["pile_rest"] if r.reason == "missing_field")
    assert "train/00.jsonl.zst:" in miss.detail and "'meta'" in miss.detail
    # 01.jsonl.zst is written as several zstd frames: all of its records come through
    assert any(d.id.startswith("train/01.jsonl.zst#") for ds in docs.values() for d in ds)
    assert all(d.id.startswith("train/0") for ds in docs.values() for d in ds)


def test_algebraic_stack_and_openwebmath():
    docs, rejects = read_source("algebraic_stack")
    assert {d.metadata["lang"] for d in docs} == {"python", "tex"}
    assert [r.reason for r in rejects] == ["invalid_json"]
    docs, _ = read_source("openwebmath")
    assert any("$" in d.text for d in docs) and all(d.metadata["url"].startswith("https://") for d in docs)


# -- chat rendering ---------------------------------------------------------------------------------------
def test_openhermes_renders_system_user_assistant():
    docs, rejects = read_source("openhermes")
    assert any(d.text.startswith("System: ") and "\n\nUser: " in d.text for d in docs)
    assert all("\n\nAssistant: " in d.text for d in docs)
    assert Counter(r.reason for r in rejects) == {"wrong_type": 2, "unknown_role": 1}
    assert any("[13]" in r.detail for r in rejects)  # a JSON array element is named by its index


def test_ultrachat_multi_turn_and_prompt_id():
    docs, _ = read_source("ultrachat")
    d = docs[0]
    assert d.text.count("User: ") == 2 and d.text.count("Assistant: ") == 2
    assert len(d.id) == 64  # prompt_id


def test_oasst_best_path_per_tree():
    docs, rejects = read_source("oasst")
    assert Counter(r.reason for r in rejects) == {"missing_field": 1, "empty_conversation": 1}
    assert all(d.text.startswith("User: ") for d in docs)
    assert {d.metadata["lang"] for d in docs} >= {"en", "de", "es"}
    assert not any("I don't know." in d.text for d in docs)  # deleted replies are skipped
    multi = [d for d in docs if d.metadata["turns"] == 4]
    assert multi and all(d.text.count("User: ") == 2 for d in multi)


def test_single_turn_sets_map_fields_to_turns():
    docs, _ = read_source("stackmathqa")
    assert all(d.text.startswith("User: ") and "\n\nAssistant: " in d.text for d in docs)
    assert docs[0].metadata["site"] == "math.stackexchange.com"
    docs, _ = read_source("templategsm")
    assert all("```python\n" in d.text for d in docs) and docs[0].metadata["template_id"] == 0
    docs, rejects = read_source("xp3x")
    assert any("Translate the following sentence into French" in d.text and "bibliothèque" in d.text for d in docs)
    assert Counter(r.reason for r in rejects) == {"missing_field": 1, "wrong_type": 1}
    docs, rejects = read_source("commitpackft")
    d = docs[0]
    assert ":" in d.id and d.text.startswith("User: ") and "```python\n" in d.text
    assert d.metadata["lang"] == "Python"
    missing = next(r for r in rejects if r.reason == "missing_field")
    assert "'new_contents'" in missing.detail
    for name, bad in (("magicoder_oss", "wrong_type"), ("magicoder_evol", "invalid_json"),
                      ("code290k_sharegpt", "missing_field")):
        docs, rejects = read_source(name)
        assert all("```python" in d.text for d in docs)
        assert [r.reason for r in rejects] == [bad], name
    _, rejects = read_source("evol_codealpaca")
    assert Counter(r.reason for r in rejects) == {"invalid_utf8": 1, "empty_text": 1}
    _, rejects = read_source("oasst_octopack")
    assert Counter(r.reason for r in rejects) == {"invalid_json": 1, "empty_text": 1}


def test_configured_template_reaches_every_chat_set():
    zephyr = ChatTemplate.from_dict({"user_prefix": "<|user|>\n", "assistant_prefix": "<|assistant|>\n",
                                     "turn_suffix": "</s>", "turn_separator": "\n"})
    for name, spec in SOURCES.items():
        if spec.rendering and spec.kind == "pretrain":  # the alignment sets always render with jetmoe_core.chat
            docs, _ = read_source(name, zephyr)
            assert docs and all(d.text.startswith(("<|user|>\n", "<|system|>", "System: ")) for d in docs), name
            assert all("<|assistant|>\n" in d.text and d.text.endswith("</s>") for d in docs), name


def test_generator_is_deterministic(tmp_path):
    """The light makers rebuild byte-identical files (the heavy ones read the whole stdlib: --check)."""
    out = subprocess.run([sys.executable, "-m", "tools.make_samples", "--out", str(tmp_path),
                          "--check", "--only", "stackmathqa", "templategsm"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "identical" in out.stdout
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 4


def test_sample_paths_come_from_the_specs(tmp_path):
    """A sample file name outside its source's allow_patterns is refused, not silently never read."""
    from tools.samples.writers import hub_path

    assert hub_path(tmp_path, "xp3x", "data/eng_Latn/x.jsonl") == tmp_path / "CohereForAI/xP3x/data/eng_Latn/x.jsonl"
    with pytest.raises(ValueError, match="allow_patterns"):
        hub_path(tmp_path, "xp3x", "data/fra_Latn/x.jsonl")
