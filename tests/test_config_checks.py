"""Every corpus-config value is checked when the config is read, with an error that names the file, the table
and the key, instead of being accepted and failing (or silently doing something else) later."""
from __future__ import annotations

import pytest

from pipeline.config import ConfigError, load_config
from tests.corpus_kit.fake_sources import ALL_STAGES, REGISTRY, write_config

CASES = [
    ('[executor.slurm]\ntime = "12h"', r"\[executor.slurm\] time = '12h' is not a Slurm time limit"),
    ("[executor.slurm]\ncpus_per_task = 0", r"\[executor.slurm\] cpus_per_task must be >= 1, got 0"),
    ("[executor.ray]\nnum_cpus = 0", r"\[executor.ray\] num_cpus must be >= 1, got 0"),
    ("[sources.alpha]\nallow_patterns = []", r"\[sources.alpha\] allow_patterns = \[\]: give at least one"),
    ("[download]\nbackoff_s = -1", r"\[download\] backoff_s must be >= 0, got -1"),
    ("[dedup]\nn_grams = 0", r"\[dedup\] n_grams must be >= 1, got 0"),
    ('[dedup]\nword_splitter = "spacey"', r"dedup.word_splitter = 'spacey'; choose one of 'regex', 'spacy'"),
    ("[tokenizer]\nmax_train_mb = 0", r"\[tokenizer\] max_train_mb must be > 0"),
    ('[tokenizer]\nkind = "file"\npath = "/nonexistent/tokenizer.json"',
     r"\[tokenizer\] path = '/nonexistent/tokenizer.json': no such file"),
    ("[shards]\nbatch_size = 0", r"\[shards\] batch_size must be >= 1, got 0"),
    ("[filters.web]\ngopher_quality = {min_words_typo = 3}", r"filters.web.gopher_quality\] unknown .*min_words_typo"),
    ('[filters.chat]\nbroken_patterns = ["("]', r"\[filters.chat\] broken_patterns\[0\] = '\(' is not a regex"),
    ("[filters.langid]\nthreshold = 2", r"\[filters.langid\] threshold must be in \[0, 1\], got 2"),
    ('[format.control_chars]\nweb = "drop"', r"format.control_chars.web = 'drop'; choose one of 'strip', 'reject'"),
    ('[tokenizer]\ninput_stage = "dedupx"', r"\[tokenizer\] input_stage = 'dedupx' is not one of \[corpus\] stages"),
]


@pytest.mark.parametrize("extra, error", CASES, ids=[c[0].split("\n")[1].split(" ")[0] + "@" + c[0].split("]")[0][1:]
                                                     for c in CASES])
def test_bad_value_is_refused_when_read(tmp_path, extra, error):
    text = write_config(tmp_path, tmp_path, stages=ALL_STAGES).read_text()
    cfg = tmp_path / "corpus.toml"
    header, lines = extra.split("\n", 1)
    cfg.write_text(text.replace(header + "\n", extra + "\n") if header + "\n" in text else text + "\n" + extra + "\n")
    with pytest.raises(ConfigError, match=error) as e:
        load_config(cfg, registry=REGISTRY)
    assert str(cfg) in str(e.value)


@pytest.mark.parametrize("override, error", [
    ("--executor.workres=2", r"override --executor.workres=2: .*unknown key 'workres'; did you mean 'workers'"),
    ("--exector.kind=slurm", r"override --exector.kind=slurm: .*unknown table 'exector'; did you mean 'executor'"),
    ("--executor.workers=-1", r"\[executor\] workers must be >= 1, got -1"),
    ("--executor.workers=many", r"override --executor.workers=many: executor.workers = 'many' is not a valid value"),
])
def test_override_errors_name_the_override(tmp_path, override, error):
    cfg = write_config(tmp_path, tmp_path)
    with pytest.raises(ConfigError, match=error):
        load_config(cfg, registry=REGISTRY, overrides=[override])
