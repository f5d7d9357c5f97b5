"""The chat template (``jetmoe_core.chat``) against transformers: the same conversation rendered by our Python
renderer + tokenizer and by ``apply_chat_template`` with our Jinja string gives the same text, the same token ids
and the same assistant mask, on a byte-level BPE (what the corpus tokenizer stage trains) and on a Llama-style
SentencePiece tokenizer."""

from __future__ import annotations

import jinja2
import numpy as np
import pytest
from tokenizers import Tokenizer

from jetmoe_core import chat
from tests.corpus_kit.chat_kit import byte_bpe_tokenizer, hf_tokenizer, metaspace_tokenizer

SYSTEM = {"role": "system", "content": "You are a concise assistant."}
CONVERSATIONS = {
    "single": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4."}],
    "system": [SYSTEM, {"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "Seven."}],
    "multi_turn": [SYSTEM, {"role": "user", "content": "Hi there!\n\nHow are you?"},
                   {"role": "assistant", "content": "Fine, thanks. And you?"},
                   {"role": "user", "content": "Good. Write `xs[::-1]` in words."},
                   {"role": "assistant", "content": "It is the list xs reversed:\n\n```python\nxs[::-1]\n```"}],
    "unicode": [{"role": "user", "content": "Übersetze: naïve café ✓"},
                {"role": "assistant", "content": "Naiv, Café ✓ 漢字 — fertig."}],
    "ends_with_user": [{"role": "user", "content": "One."}, {"role": "assistant", "content": "Two."},
                       {"role": "user", "content": "Three?"}],
}


@pytest.fixture(scope="module", params=["byte_bpe", "metaspace"])
def tokenizers_pair(request, tmp_path_factory):
    make = byte_bpe_tokenizer if request.param == "byte_bpe" else metaspace_tokenizer
    path = make(tmp_path_factory.mktemp(request.param) / "tokenizer.json")
    return Tokenizer.from_file(str(path)), hf_tokenizer(path)


def test_layout_is_zephyrs():
    """RECIPE.md's layout: <|system|>\\n…</s>\\n<|user|>\\n…</s>\\n<|assistant|>\\n…</s>\\n; the generation prompt
    opens the assistant's line."""
    msgs = CONVERSATIONS["system"]
    assert chat.render_text(msgs) == ("<|system|>\nYou are a concise assistant.</s>\n<|user|>\nName a prime.</s>\n"
                                      "<|assistant|>\nSeven.</s>\n")
    assert chat.render_text(msgs[:2], add_generation_prompt=True).endswith("</s>\n<|assistant|>\n")
    segs = chat.render(msgs)
    assert [s.text for s in segs if s.trained] == ["Seven.</s>"]
    assert "".join(s.text for s in segs) == chat.render_text(msgs)


@pytest.mark.parametrize("name", list(CONVERSATIONS))
@pytest.mark.parametrize("generation_prompt", [False, True])
def test_same_text_ids_and_mask_as_transformers(tokenizers_pair, name, generation_prompt):
    tok, hf = tokenizers_pair
    msgs = CONVERSATIONS[name]
    text = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt)
    assert text == chat.render_text(msgs, add_generation_prompt=generation_prompt)
    out = hf.apply_chat_template(msgs, add_generation_prompt=generation_prompt, return_dict=True,
                                 return_assistant_tokens_mask=True)
    ids, mask = chat.encode(tok, msgs, add_generation_prompt=generation_prompt)
    assert ids == list(out["input_ids"])
    assert mask.tolist() == list(out["assistant_masks"])
    # the trained tokens are the assistant contents, each closed by its EOS
    trained = tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=False)
    assert trained == "".join(m["content"] + "</s>" for m in msgs if m["role"] == "assistant")


def test_training_row_ends_at_the_last_eos(tokenizers_pair):
    tok, hf = tokenizers_pair
    msgs = CONVERSATIONS["multi_turn"]
    full = hf.apply_chat_template(msgs, return_dict=False)
    ids, mask = chat.end_at_last_eos(*chat.encode(tok, msgs), tok.token_to_id("</s>"))
    assert ids == full[: len(ids)] and ids[-1] == tok.token_to_id("</s>")
    assert tok.decode(full[len(ids):], skip_special_tokens=False).strip(" ▁") == "\n"  # only the final newline
    assert len(mask) == len(ids) and mask[-1] == 1


def test_completion_split_matches_the_generation_prompt(tokenizers_pair):
    """The DPO layout: prompt ids are apply_chat_template(prompt, add_generation_prompt=True); the completion is
    the answer's tokens and its EOS, cut from the whole conversation's tokens."""
    tok, hf = tokenizers_pair
    msgs = CONVERSATIONS["multi_turn"]
    prompt, answer = msgs[:-1], msgs[-1]["content"]
    p_ids, c_ids = chat.encode_completion(tok, prompt, answer)
    assert p_ids == list(hf.apply_chat_template(prompt, add_generation_prompt=True, return_dict=False))
    full = hf.apply_chat_template(msgs, return_dict=False)
    assert full[: len(p_ids) + len(c_ids)] == p_ids + c_ids
    assert tok.decode(c_ids, skip_special_tokens=False) == answer + "</s>"


def test_unknown_role_is_refused_by_both():
    msgs = [{"role": "tool", "content": "{}"}]
    with pytest.raises(chat.ChatFormatError, match="'tool'"):
        chat.render(msgs)
    from transformers.utils.chat_template_utils import render_jinja_template

    with pytest.raises(jinja2.TemplateError, match="got tool"):
        render_jinja_template(conversations=[msgs], chat_template=chat.CHAT_TEMPLATE, eos_token="</s>")
    with pytest.raises(chat.ChatFormatError, match="content is NoneType"):
        chat.render([{"role": "user", "content": None}])


def test_a_token_across_the_trained_border_raises(tokenizers_pair):
    """A content that starts with spaces lets byte-level BPE merge the template's newline with them: no mask is
    exact then (transformers would train the template's newline), so encode refuses. Where no token crosses, the
    mask is transformers'."""
    tok, hf = tokenizers_pair
    msgs = [{"role": "user", "content": "Indent it."}, {"role": "assistant", "content": "   indented"}]
    enc = tok.encode(chat.render_text(msgs), add_special_tokens=False)
    crossing = [t for t, (a, b) in zip(enc.tokens, enc.offsets)
                if a < len("<|user|>\nIndent it.</s>\n<|assistant|>\n") < b]
    if not crossing:  # the SentencePiece-style tokenizer keeps the newline apart: the mask is exact
        ids, mask = chat.encode(tok, msgs)
        assert mask.tolist() == hf.apply_chat_template(msgs, return_dict=True,
                                                       return_assistant_tokens_mask=True)["assistant_masks"]
        return
    with pytest.raises(chat.TokenBoundaryError, match="crosses the border"):
        chat.encode(tok, msgs)


def test_mask_from_offsets_rules():
    segs = [chat.Segment("ab", False), chat.Segment("cd", True), chat.Segment("e", False)]
    assert chat.mask_from_offsets([(0, 2), (2, 3), (3, 4), (4, 5)], segs).tolist() == [0, 1, 1, 0]
    assert chat.mask_from_offsets([(0, 0), (0, 2), (2, 4), (4, 5)], segs).tolist() == [0, 0, 1, 0]  # zero width
    with pytest.raises(chat.TokenBoundaryError):
        chat.mask_from_offsets([(0, 3), (3, 5)], segs)
    # a token across two untrained segments is no border
    segs2 = [chat.Segment("ab", False), chat.Segment("cd", False), chat.Segment("e", True)]
    assert chat.mask_from_offsets([(0, 3), (3, 4), (4, 5)], segs2).tolist() == [0, 0, 1]
    with pytest.raises(chat.ChatFormatError, match="exactly one run"):
        chat.split_completion([5, 6, 7], np.array([1, 0, 1], dtype=np.uint8))
