"""Decontamination against evaluation sets laid out as their hub repos (a local mirror of tiny files with
the real repos' paths and columns), and against a custom local file: documents sharing a 13-gram with an
example are dropped as decontaminated_<evalset>, the others kept; then the decontaminate stage in a real
build, between the filters and dedup, with its own account in the manifest's chain."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from pipeline.config import load_config
from pipeline.dag import build, make_plan, unit_fingerprint
from pipeline.stages.decontaminate import (EVALSETS, DecontFilter, DecontOptions, build_index, decont_fingerprint,
                                           eval_files, ngram_hashes, normalize)
from tests.corpus_kit.fake_sources import ALL_STAGES, REPO_ROOT, small_corpus_config

GSM_Q = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
         "How many clips did Natalia sell altogether in April and May?")
GSM_A = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether."
WINO = "The trophy doesn't fit into the brown suitcase because the _ is too large for it to be carried inside."
ROWS = {
    "gsm8k": ("main/test-00000-of-00001.parquet", [{"question": GSM_Q, "answer": GSM_A}]),
    "humaneval": ("openai_humaneval/test-00000-of-00001.parquet", [{
        "task_id": "HumanEval/0", "entry_point": "has_close_elements", "test": "def check(c): pass",
        "prompt": "from typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
                  "    \"\"\" Check if in given list of numbers, are any two numbers closer to each other than given "
                  "threshold.\n    \"\"\"\n",
        "canonical_solution": "    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n"
                              "            if idx != idx2:\n                return True\n    return False\n"}]),
    "mbpp": ("full/test-00000-of-00001.parquet", [{
        "task_id": 11, "text": "Write a python function to remove first and last occurrence of a given character "
                               "from the string.", "code": "def remove_Occ(s,ch):\n    return s.replace(ch, '')",
        "test_list": ["assert remove_Occ('hello','l') == 'heo'"]}]),
    "mmlu": ("all/test-00000-of-00001.parquet", [{
        "question": "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q and give it.",
        "subject": "abstract_algebra", "choices": ["0", "4", "2", "6"], "answer": 1}]),
    "arc": ("ARC-Challenge/test-00000-of-00001.parquet", [{
        "id": "Mercury_7175875", "answerKey": "C",
        "question": "An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most "
                    "likely effect of this increase in rotation?",
        "choices": {"text": ["Planetary density will decrease.", "Planetary years will become longer.",
                             "Planetary days will become shorter.", "Planetary gravity will become stronger."],
                    "label": ["A", "B", "C", "D"]}}]),
    "hellaswag": ("default/validation/0000.parquet", [{
        "ind": 24, "activity_label": "Roof shingle removal", "source_id": "activitynet~v_-JhWjGDPHMY",
        "ctx": "A man is sitting on a roof. He starts pulling up roofing on a roof while holding a hammer and",
        "ctx_a": "A man is sitting on a roof.", "ctx_b": "he",
        "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                    "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
        "split": "val", "split_type": "indomain", "label": "3"}]),
    "truthfulqa": ("generation/validation-00000-of-00001.parquet", [{
        "type": "Adversarial", "category": "Misconceptions", "source": "https://wonderopolis.org",
        "question": "What happens to you if you eat watermelon seeds?",
        "best_answer": "The watermelon seeds pass through your digestive system without any harm to you at all",
        "correct_answers": ["Nothing happens", "You eat watermelon seeds"],
        "incorrect_answers": ["You grow watermelons in your stomach", "You get sick"]}]),
    "winogrande": ("winogrande_xl/validation-00000-of-00001.parquet", [{
        "sentence": WINO, "option1": "trophy", "option2": "suitcase", "answer": "1"}]),
}
REPOS = {name: spec.repo_id for name, spec in EVALSETS.items()}
FILLER = ("Meanwhile the committee reviewed the annual budget and found that most of the spending had gone to "
          "roads, schools and the new library on the corner of the main square near the station.")


@pytest.fixture()
def mirror(tmp_path):
    root = tmp_path / "mirror"
    for name, (rel, rows) in ROWS.items():
        path = root / REPOS[name] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), path)
    return root


def run_filter(step, texts):
    out = []
    for t in texts:
        res = step.filter(Document(text=t, id="x"))
        out.append("kept" if res is True else res[1])
    return out


def test_catalog_covers_the_papers_table3():
    assert set(EVALSETS) == {"gsm8k", "humaneval", "mbpp", "mmlu", "arc", "hellaswag", "truthfulqa", "winogrande"}


def test_each_evalset_catches_a_leaked_example(tmp_path, mirror):
    opts = DecontOptions(mirror_root=str(mirror))
    index = build_index(opts, tmp_path / "index")
    meta = json.loads((index / "index.json").read_text())
    assert all(meta["evalsets"][e]["ngrams"] > 0 for e in EVALSETS), meta
    step = DecontFilter(str(index), opts.evalsets, opts.n)
    leaks = {
        "gsm8k": f"{FILLER} Here is a puzzle: {GSM_Q} {GSM_A} {FILLER}",
        "humaneval": FILLER + "\n" + ROWS["humaneval"][1][0]["prompt"] + ROWS["humaneval"][1][0]["canonical_solution"],
        "mbpp": "Task: write a Python function to remove first and last occurrence of a given character from the "
                "string, please.",
        "mmlu": "QUIZ! Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q and give "
                "it. (a) 0 (b) 4 (c) 2 (d) 6",
        "arc": FILLER + " An astronomer observes that a planet rotates faster after a meteorite impact. Which is "
                        "the most likely effect of this increase in rotation?",
        "hellaswag": "A man is sitting on a roof. He starts pulling up roofing on a roof while holding a hammer "
                     "and is ripping level tiles off. Later he rests.",
        "truthfulqa": "Myth: what happens to you if you eat watermelon seeds? You grow watermelons in your stomach!",
        "winogrande": "The trophy doesn't fit into the brown suitcase because the suitcase is too large for it to "
                      "be carried inside.",
    }
    assert run_filter(step, list(leaks.values())) == [f"decontaminated_{e}" for e in leaks]
    clean = [FILLER, "Natalia sold clips to her friends in April.", "A man is sitting on a roof."]
    assert run_filter(step, clean) == ["kept"] * 3


def test_normalization_case_punctuation_numbers():
    assert normalize("Héllo,  WORLD!! It costs 3.50 dollars") == "hello world it costs 0 dollars"
    a = ngram_hashes("Natalia SOLD clips -- to 99 of her friends in April, and then she sold half as many.", 13)
    b = ngram_hashes("natalia sold clips to 48 of her friends in april and then she sold half as many", 13)
    assert len(a) and list(a) == list(b)
    assert len(ngram_hashes("twelve words are too few to make one thirteen gram ok", 13)) == 0


def test_index_follows_the_files_and_a_changed_file_changes_the_fingerprint(tmp_path, mirror):
    opts = DecontOptions(mirror_root=str(mirror), evalsets=["gsm8k"])
    before = decont_fingerprint(opts)
    index = build_index(opts, tmp_path / "index")
    assert json.loads((index / "index.json").read_text())["evalsets"]["gsm8k"]["examples"] == 1
    rel, rows = ROWS["gsm8k"]
    pq.write_table(pa.Table.from_pylist(rows + rows), mirror / REPOS["gsm8k"] / rel)
    assert decont_fingerprint(opts) != before  # so the stage's unit (and what follows it) reruns
    assert build_index(opts, tmp_path / "index") == index  # rebuilt in place
    assert json.loads((index / "index.json").read_text())["evalsets"]["gsm8k"]["examples"] == 2
    assert not list(tmp_path.glob(".*tmp"))


def test_custom_evalset_from_local_jsonl(tmp_path):
    f = tmp_path / "evals/mytask.jsonl"
    f.parent.mkdir()
    f.write_text(json.dumps({"q": "What is the name of the tallest mountain on the island that the ferry reaches "
                                  "at noon?", "a": "Nobody knows."}) + "\n")
    opts = DecontOptions(evalsets=["mytask"], custom={"mytask": {"files": [str(tmp_path / "evals/*.jsonl")],
                                                                              "fields": ["q", "a"]}})
    step = DecontFilter(str(build_index(opts, tmp_path / "index")), opts.evalsets, opts.n)
    assert run_filter(step, ["So: what is the name of the tallest mountain on the island that the ferry reaches "
                             "at noon? Nobody knows.", FILLER]) == ["decontaminated_mytask", "kept"]


def test_errors_name_the_file_and_the_fix(tmp_path, mirror):
    with pytest.raises(ValueError, match=r"evalsets \['gsm9k'\] unknown; built in: gsm8k"):
        DecontOptions(evalsets=["gsm9k"])
    bad = mirror / REPOS["mmlu"] / ROWS["mmlu"][0]
    pq.write_table(pa.Table.from_pylist([{"question": "q only"}]), bad)
    opts = DecontOptions(mirror_root=str(mirror), evalsets=["mmlu"])
    with pytest.raises(ValueError, match=r"test-00000-of-00001.parquet: row 0 lacks the fields evaluation set mmlu "
                                         r"needs \(question, choices\)"):
        build_index(opts, tmp_path / "index")
    with pytest.raises(FileNotFoundError, match="match no file"):
        eval_files("x", DecontOptions(evalsets=["x"], custom={"x": {"files": [str(tmp_path / "none*.jsonl")],
                                                                    "fields": ["q"]}}))
    with pytest.raises(Exception, match="mirror folder .* does not exist"):
        eval_files("gsm8k", DecontOptions(mirror_root=str(tmp_path / "nowhere")))


TEMPLATEGSM = REPO_ROOT / "pipeline/samples/math-ai/TemplateGSM/data/1k/0000-0999/templategsm-train-problems-0000.jsonl"


def test_decontaminate_stage_in_a_build(tmp_path):
    """Between filter and dedup when listed: its own account per source, dedup reads its output, the manifest's
    chain and fidelity table show it; leaving it out of the stages puts dedup back on the filter's output."""
    leak = tmp_path / "evals/leak.jsonl"
    leak.parent.mkdir()
    leak.write_text(TEMPLATEGSM.read_text().splitlines()[0] + "\n")  # one TemplateGSM problem as an "eval set"
    stages = ALL_STAGES[:3] + ["decontaminate"] + ALL_STAGES[3:] + ["fidelity"]
    cfg = small_corpus_config(tmp_path, stages=stages, extra=(
        f'\n[decontaminate]\nevalsets = ["leak"]\n[decontaminate.custom.leak]\nfiles = ["{leak}"]\n'
        f'fields = ["problem", "solution_wocode"]\n'))
    outcomes = build(cfg, progress=False)
    assert {o.state for o in outcomes} == {"done"}, [(o.unit, o.failures) for o in outcomes if o.state != "done"]
    man = json.loads((tmp_path / "shards/manifest.json").read_text())
    chain = man["sources"]["templategsm"]["accounting"]
    assert [a["stage"] for a in chain] == ["format", "filter", "decontaminate", "dedup", "dedup_cross", "shard"]
    decont = chain[2]
    # numbers normalise to 0, so the answer's 13-gram "buys 0 notebooks for 0 each so the total is 0 0 0" is
    # shared by every problem of that template about notebooks, whoever buys them: 13 of the sample's
    assert decont["dropped"] == {"decontaminated_leak": 13} and decont["docs_in"] == chain[1]["docs_out"]
    assert chain[3]["docs_in"] == decont["docs_out"]
    assert all(man["sources"][s]["accounting"][2]["dropped"] == {} for s in ("oasst_octopack", "magicoder_oss"))
    assert man["fidelity"]["templategsm"]["decontaminate_share"] > 0

    plan = make_plan(load_config(cfg))
    assert "decontaminate/_corpus" in plan.unit("dedup/templategsm").deps
    without = load_config(cfg, overrides=[f"--corpus.stages={json.dumps(ALL_STAGES)}"])
    assert make_plan(without).unit("dedup/templategsm").deps == ["filter/templategsm"]
    # another evaluation file reruns decontamination and what follows, not the filters
    fps = {u.id: unit_fingerprint(plan, u, {}) for u in plan.units}
    leak.write_text(TEMPLATEGSM.read_text().splitlines()[1] + "\n")
    plan2 = make_plan(load_config(cfg))
    changed = {u.id for u in plan2.units if unit_fingerprint(plan2, u, {}) != fps[u.id]}
    assert "filter/templategsm" not in changed and {"decontaminate/_corpus", "dedup/templategsm"} <= changed
