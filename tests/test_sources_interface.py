"""The source registry and the chat template: names, groups, errors, configuration."""

import re

import pytest

from pipeline.sources import (SOURCES, ChatTemplate, ChatTemplateError, UnknownSourceError, get_source,
                              input_groups, sources_of_kind)
from pipeline.sources.base import FAMILIES, FILE_FORMATS

DESIGN_NAMES = [
    "refinedweb", "starcoder", "dolma_pes2o", "pile_wikipedia", "pile_stackexchange", "pile_arxiv", "pile_rest",
    "algebraic_stack", "openwebmath", "stackmathqa", "templategsm", "oasst", "oasst_octopack", "xp3x",
    "commitpackft", "openhermes", "ultratextbooks", "ultrachat", "magicoder_evol", "magicoder_oss",
    "evol_codealpaca", "code290k_sharegpt",
]


ALIGNMENT_NAMES = ["sft_ultrachat", "sft_airoboros", "sft_code_feedback", "sft_orca_math", "sft_systemchat",
                   "sft_capybara", "dpo_ultrafeedback"]


def test_all_22_design_names():
    assert sources_of_kind("pretrain") == DESIGN_NAMES
    assert len(DESIGN_NAMES) == 22
    # then the seven alignment sets of the chat model, six SFT and one DPO
    assert list(SOURCES) == DESIGN_NAMES + ALIGNMENT_NAMES
    assert sources_of_kind("sft") == ALIGNMENT_NAMES[:6] and sources_of_kind("dpo") == ALIGNMENT_NAMES[6:]


@pytest.mark.parametrize("name", DESIGN_NAMES + ALIGNMENT_NAMES)
def test_spec_fields_are_well_formed(name):
    spec = SOURCES[name]
    assert spec.name == name and re.fullmatch(r"[a-z0-9_]+", name)
    assert spec.family in FAMILIES
    assert spec.file_format in FILE_FORMATS
    assert spec.repo_type == "dataset"
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", spec.repo_id)
    assert spec.allow_patterns and all(isinstance(p, str) and p for p in spec.allow_patterns)
    assert spec.revision == "main" or re.fullmatch(r"[0-9a-f]{40}", spec.revision)
    assert spec.description
    # a branch instead of a sha must say why in the notes or a comment; the notes always say what is verified
    assert spec.notes


def test_get_source_unknown_lists_known_names():
    with pytest.raises(UnknownSourceError) as e:
        get_source("refinedweb2")
    assert isinstance(e.value, ValueError)
    for name in DESIGN_NAMES:
        assert name in str(e.value)


def test_input_groups_pile_is_one_group_in_order():
    groups = input_groups(["refinedweb", "pile_arxiv", "starcoder", "pile_wikipedia", "pile_arxiv"])
    assert list(groups) == ["refinedweb", "pile", "starcoder"]
    assert [s.name for s in groups["pile"]] == ["pile_arxiv", "pile_wikipedia"]
    all_groups = input_groups(DESIGN_NAMES)
    assert [s.name for s in all_groups["pile"]] == ["pile_wikipedia", "pile_stackexchange", "pile_arxiv", "pile_rest"]
    assert len(all_groups) == 19
    with pytest.raises(UnknownSourceError):
        input_groups(["refinedweb", "the_pile"])


def test_pile_members_share_files():
    pile = [SOURCES[n] for n in ("pile_wikipedia", "pile_stackexchange", "pile_arxiv", "pile_rest")]
    assert len({(s.repo_id, s.revision, s.allow_patterns, s.file_format) for s in pile}) == 1
    assert all(s.reject_source == "pile_rest" for s in pile)


def test_chat_template_default_render():
    t = ChatTemplate()
    out = t.render([("system", "Be brief."), ("human", " Hi? "), ("gpt", "Hello.")])
    assert out == "System: Be brief.\n\nUser: Hi?\n\nAssistant: Hello."
    assert ChatTemplate(drop_system=True).render([("system", "x"), ("user", "a"), ("assistant", "b")]) == \
        "User: a\n\nAssistant: b"


def test_chat_template_from_dict_zephyr_and_errors():
    t = ChatTemplate.from_dict({"user_prefix": "<|user|>\n", "assistant_prefix": "<|assistant|>\n",
                                "turn_suffix": "</s>", "turn_separator": "\n"})
    assert t.render([("prompter", "q"), ("assistant", "a")]) == "<|user|>\nq</s>\n<|assistant|>\na</s>"
    assert ChatTemplate.from_dict(None) == ChatTemplate()
    assert ChatTemplate.from_dict(t.to_dict()) == t
    with pytest.raises(ChatTemplateError, match="'user_prefx'"):
        ChatTemplate.from_dict({"user_prefx": "U: "})
    with pytest.raises(ChatTemplateError, match="drop_system"):
        ChatTemplate.from_dict({"drop_system": "yes"})
    with pytest.raises(ChatTemplateError, match="unknown role 'tool'"):
        ChatTemplate().render([("tool", "x")])


@pytest.mark.parametrize("name", DESIGN_NAMES + ALIGNMENT_NAMES)
def test_specs_pickle_with_their_adapters(name):
    """datatrove ships readers to worker processes: a spec must survive plain pickle, adapter included."""
    import pickle

    spec = SOURCES[name]
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec
    assert (back.adapter or back.file_adapter) is not None
    assert type(back.adapter or back.file_adapter) is type(spec.adapter or spec.file_adapter)


def test_cli_reads_samples_and_lists_catalog(capsys, tmp_path):
    from pipeline.sources.__main__ import main

    assert main(["stackmathqa", "pile_arxiv"]) == 0
    out = capsys.readouterr().out
    assert "stackmathqa" in out and "pile_arxiv" in out and "invalid_json 1" in out
    assert "pile_rest" not in out.split("rejected", 1)[1]  # only the asked sources are printed
    assert main(["--list"]) == 0
    assert "monology/pile-uncopyrighted" in capsys.readouterr().out
    assert main(["--root", str(tmp_path), "xp3x"]) == 1  # an empty mirror is an error, not a silent zero
    assert "no files under" in capsys.readouterr().err
