"""Run configs: every shipped TOML loads; overrides take precedence; bad input names the key."""

import pytest

from trainer.config import CONFIG_DIR, ConfigError, from_dict, load_run_config

SHIPPED = sorted(CONFIG_DIR.glob("*.toml"))


def test_shipped_configs_exist():
    names = {p.stem for p in SHIPPED}
    assert {"tiny", "jetmoe-8b"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_run_config_loads(path):
    cfg = load_run_config(path)
    assert cfg.source == str(path)
    assert from_dict(cfg.to_dict()) .to_dict() == cfg.to_dict()


def test_jetmoe_8b_is_the_paper():
    c = load_run_config(CONFIG_DIR / "jetmoe-8b.toml")
    assert (c.optim.lr, c.optim.weight_decay, c.optim.grad_clip) == (5e-4, 0.1, 1.0)
    assert c.train.batch_tokens == 1024 * 4096 and c.data.seq_len == 4096
    assert c.schedule.warmup_tokens == 10 ** 10
    assert (c.train.phase1_tokens, c.train.phase2_tokens) == (10 ** 12, 250 * 10 ** 9)
    assert c.schedule.decay == "exponential" and c.schedule.final_frac == 0.1
    assert c.data.phase1_mixture.endswith("phase1.toml") and c.data.phase2_mixture.endswith("phase2.toml")


def test_overrides_beat_file_beat_defaults(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text("[optim]\nlr = 1e-3\n[data]\nseq_len = 64\n")
    c = load_run_config(p, ["--optim.lr=2e-4", "--data.corpus=shards/other", "--schedule.decay=cosine",
                            "--train.phase1_tokens=1e6", "--log.progress=false"])
    assert c.optim.lr == 2e-4                      # CLI over file
    assert c.data.seq_len == 64                    # file over default
    assert c.optim.weight_decay == 0.1             # default
    assert c.data.corpus == "shards/other"         # bare strings need no quotes
    assert c.train.phase1_tokens == 1_000_000 and isinstance(c.train.phase1_tokens, int)
    assert c.log.progress is False and c.schedule.decay == "cosine"


@pytest.mark.parametrize("text,needle", [
    ("[optim]\nlrr = 1e-3\n", "[optim] unknown key 'lrr'"),
    ("[optimizer]\nlr = 1e-3\n", "unknown key 'optimizer'; did you mean 'optim'?"),
    ("[optim]\nlr = 'fast'\n", "optim.lr"),
    ("[data]\nseq_len = 1.5\n", "data.seq_len"),
    ("[log]\nprogress = 1\n", "log.progress"),
    ("[schedule]\ndecay = 'step'\n", "schedule.decay"),
    ("[train]\nbatch_tokens = 1000\n[data]\nseq_len = 128\n", "train.batch_tokens"),
    ("[schedule]\nwarmup_tokens = 10_000_000\n", "schedule.warmup_tokens"),
    ("[schedule]\nfinal_frac = 0\n", "schedule.final_frac"),
    ("[optim\nlr = 1\n", "not valid TOML"),
    ("[train]\ncompile = true\n", "train.compile"),              # a string choice: "auto", "true", "false"
    ("[train]\ncompile = 'yes'\n", "train.compile"),
    ("[train]\ncompile_backend = 'cudagraphs'\n", "train.compile_backend"),
    ("[train]\nweight_casts = 'never'\n", "train.weight_casts"),
    ("[train]\nprecision = 'fp32'\nweight_casts = 'per-step'\n", 'train.weight_casts = "per-step" needs bf16'),
])
def test_bad_configs_name_the_key(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_run_config(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_unknown_key_lists_the_known_ones(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[optim]\nlearning_rate = 1e-3\n")
    with pytest.raises(ConfigError, match=r"learning_rate.*known: lr, "):
        load_run_config(p)


@pytest.mark.parametrize("arg", ["--optim.nope=1", "optim.lr=1", "--lr=1", "--nosection.lr=1"])
def test_bad_overrides(arg):
    with pytest.raises(ConfigError):
        load_run_config(None, [arg])


def test_missing_file_lists_shipped_configs(tmp_path):
    with pytest.raises(ConfigError, match="tiny.toml"):
        load_run_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("key,moved_to", [("aux_coef", "load_balance_coef"), ("z_coef", "z_loss_coef")])
def test_aux_loss_weights_live_in_the_model_config(tmp_path, key, moved_to):
    """One pair of aux-loss weights: the model's (its loss and its HF export read them); the run config's old
    keys are refused with where they went, in a file and as an override."""
    p = tmp_path / "old.toml"
    p.write_text(f"[train]\n{key} = 0.01\n")
    with pytest.raises(ConfigError, match=rf"{p}: train.{key} .*model config's {moved_to}"):
        load_run_config(p)
    with pytest.raises(ConfigError, match=rf"override --train.{key}=0.02: train.{key} .*{moved_to}"):
        load_run_config(None, [f"--train.{key}=0.02"])
