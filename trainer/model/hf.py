"""Convert between our checkpoints and Hugging Face `JetMoeForCausalLM` folders.

    python -m trainer export    runs/tiny                         # newest checkpoint of a run → exports/tiny
    python -m trainer export    runs/tiny/checkpoints/step-00000600 exports/tiny-600 --dtype bfloat16
    python -m trainer export    runs/tiny --force                 # replace an earlier export of it
    python -m trainer import-hf path/to/jetmoe-8b runs/imported/checkpoints/step-00000000

The export folder holds config.json (HF keys), model.safetensors, generation_config.json and the corpus
tokenizer (tokenizer.json + tokenizer_config.json), so `AutoModelForCausalLM.from_pretrained(dir)` and
`AutoTokenizer.from_pretrained(dir)` load it (and so do lm-eval and vLLM), plus the run's saved config
(run_config.toml: model, data, mixtures, tokens, optimizer) when the checkpoint belongs to a run folder. The
export of an SFT or DPO checkpoint (its train_state.json names the stage; `--chat` forces it for another) is a
chat model: its tokenizer_config.json carries `jetmoe_core.chat.CHAT_TEMPLATE` as `chat_template` and EOS as the
pad token (generation_config too), so `apply_chat_template(messages, add_generation_prompt=True)` gives the ids it
was trained on and `generate` stops at the EOS that ends each assistant turn.
The out folder defaults to exports/<run name>. It is written beside its final name and renamed into place, so it
is complete or absent; an I/O failure is an exit 2 naming the path. An export never overwrites: a folder that
exists and is not empty is refused, unless --force is given and it holds nothing but an earlier export (a
folder with other files is never replaced).
Tensors are renamed, never reshaped: our layouts are HF's, and our attention pairs query and K/V heads the
way HF's `.repeat` does.
Neither direction builds a model, so an 8B conversion needs memory for one copy of the weights only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from .config import ModelConfig
from jetmoe_core.io import IOFault, sha256_file, write_bytes_atomic, write_json_atomic
from trainer.writers import install_folder, save_safetensors

from .io import CONFIG, WEIGHTS, read_model_config, save_safetensors_atomic
from .jetmoe import JetMoE

__all__ = ["to_hf_config", "from_hf_config", "to_hf_state_dict", "from_hf_state_dict", "export_checkpoint",
           "is_chat_checkpoint",
           "import_hf", "resolve_checkpoint", "default_export_dir", "read_hf_folder", "export_main", "import_main"]

HF_BLOCK_EPS = 1e-6
EXPORT_FILES = {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                "tokenizer_config.json", "run_config.toml"}  # transformers' JetMoeDecoderLayer builds its two RMSNorms with the default eps

# ours (per layer, after "layers.{i}.") -> HF (after "model.layers.{i}.")
_LAYER_KEYS = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn.kv_proj.weight": "self_attention.kv_proj.weight",
    "attn.router.weight": "self_attention.experts.router.layer.weight",
    "attn.q_proj.weight": "self_attention.experts.input_linear.weight",
    "attn.o_proj.weight": "self_attention.experts.output_linear.weight",
    "attn.bias": "self_attention.experts.bias",
    "mlp_norm.weight": "post_attention_layernorm.weight",
    "mlp.router.weight": "mlp.router.layer.weight",
    "mlp.input_linear.weight": "mlp.input_linear.weight",
    "mlp.output_linear.weight": "mlp.output_linear.weight",
    "mlp.bias": "mlp.bias",
}
_TOP_KEYS = {"embed.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
_HF_TO_OURS_LAYER = {v: k for k, v in _LAYER_KEYS.items()}
_HF_TO_OURS_TOP = {v: k for k, v in _TOP_KEYS.items()}


def _ours_to_hf_name(name: str) -> str:
    if name in _TOP_KEYS:
        return _TOP_KEYS[name]
    m = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
    if not m or m.group(2) not in _LAYER_KEYS:
        raise KeyError(f"no Hugging Face name for our tensor {name!r}")
    return f"model.layers.{m.group(1)}.{_LAYER_KEYS[m.group(2)]}"


def _hf_to_ours_name(name: str) -> str | None:
    """Our name for an HF tensor; None for lm_head.weight (tied, checked separately)."""
    if name == "lm_head.weight":
        return None
    if name in _HF_TO_OURS_TOP:
        return _HF_TO_OURS_TOP[name]
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", name)
    if not m or m.group(2) not in _HF_TO_OURS_LAYER:
        raise KeyError(f"unknown tensor {name!r} in a JetMoE checkpoint")
    return f"layers.{m.group(1)}.{_HF_TO_OURS_LAYER[m.group(2)]}"


def to_hf_config(cfg: ModelConfig, dtype: torch.dtype = torch.float32) -> dict:
    if not cfg.same_experts:
        (ea, ka), (em, km) = cfg.experts("attn"), cfg.experts("mlp")
        raise ValueError(f"this model has {ea} attention experts top-{ka} but {em} MLP experts top-{km}: Hugging "
                         "Face's JetMoeForCausalLM has one num_local_experts / num_experts_per_tok for both, so it "
                         "cannot hold this model. Only a model whose MoA and MoE expert counts and top-k are equal "
                         "can be exported (the ablation grid's MoE-only / MoA-only variants cannot)")
    if abs(cfg.block_norm_eps - HF_BLOCK_EPS) > 1e-12:
        raise ValueError(f"block_norm_eps={cfg.block_norm_eps} cannot be exported: transformers' JetMoE fixes the "
                         f"in-block RMSNorm eps at {HF_BLOCK_EPS}, so its logits would differ from ours")
    return {
        "architectures": ["JetMoeForCausalLM"],
        "model_type": "jetmoe",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layers,
        "num_key_value_heads": cfg.n_kv_heads,
        "num_attention_heads": cfg.n_q_heads,
        "kv_channels": cfg.head_dim,
        "intermediate_size": cfg.ffn_hidden,
        "num_local_experts": cfg.n_experts,
        "num_experts_per_tok": cfg.top_k,
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.rms_norm_eps,
        # transformers < 5 reads rope_theta, 5.x reads rope_parameters (and still accepts rope_theta)
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "activation_function": "silu",
        "tie_word_embeddings": True,
        "initializer_range": cfg.init_std,
        "aux_loss_coef": cfg.load_balance_coef,
        "output_router_logits": False,
        "attention_dropout": 0.0,
        "use_cache": True,
        "bos_token_id": cfg.bos_id,
        "eos_token_id": cfg.eos_id,
        "pad_token_id": None,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


_HF_DEFAULTS = {  # transformers' JetMoeConfig defaults
    "vocab_size": 32000, "hidden_size": 2048, "num_hidden_layers": 12, "num_key_value_heads": 16,
    "kv_channels": 128, "intermediate_size": 5632, "max_position_embeddings": 4096, "num_local_experts": 8,
    "num_experts_per_tok": 2, "rms_norm_eps": 1e-6, "initializer_range": 0.01, "aux_loss_coef": 0.01,
    "bos_token_id": 1, "eos_token_id": 2, "activation_function": "silu", "tie_word_embeddings": True,
}


def from_hf_config(hf: dict, source: str = "config.json") -> ModelConfig:
    if hf.get("model_type") != "jetmoe":
        raise ValueError(f"{source}: model_type is {hf.get('model_type')!r}, expected 'jetmoe'")
    # transformers fills keys a config.json leaves out with JetMoeConfig's defaults; do the same.
    hf = {**_HF_DEFAULTS, **{k: v for k, v in hf.items() if v is not None or k not in _HF_DEFAULTS}}
    if hf.get("activation_function", "silu") != "silu":
        raise ValueError(f"{source}: activation_function {hf['activation_function']!r} is not supported (only silu)")
    if not hf.get("tie_word_embeddings", True):
        raise ValueError(f"{source}: tie_word_embeddings is false; this trainer's JetMoE ties input and output embeddings")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"{source}: rope type {rope.get('rope_type', rope.get('type'))!r} is not supported (only default)")
    theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    eos = hf.get("eos_token_id", 2)
    return ModelConfig(
        vocab_size=hf["vocab_size"], d_model=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
        n_kv_heads=hf["num_key_value_heads"], head_dim=hf["kv_channels"], n_experts=hf["num_local_experts"],
        top_k=hf["num_experts_per_tok"], ffn_hidden=hf["intermediate_size"],
        max_seq_len=hf.get("max_position_embeddings", 4096), rope_theta=float(theta),
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)), block_norm_eps=HF_BLOCK_EPS,
        init_std=float(hf.get("initializer_range", 0.01)), load_balance_coef=float(hf.get("aux_loss_coef", 0.01)),
        bos_id=hf.get("bos_token_id", 1), eos_id=eos[0] if isinstance(eos, list) else eos,
        name=hf.get("_name_or_path", "") or "hf-import")


def _expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in JetMoE(cfg).state_dict().items()}


def _check_shapes(tensors: dict[str, torch.Tensor], cfg: ModelConfig, where: str) -> None:
    expected = _expected_shapes(cfg)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{where}: tensors do not match the config: missing {missing[:4]}, unexpected {extra[:4]}")
    for k, shape in expected.items():
        if tuple(tensors[k].shape) != shape:
            raise ValueError(f"{where}: tensor {k} has shape {tuple(tensors[k].shape)}; the config implies {shape}")


def to_hf_state_dict(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {_ours_to_hf_name(k): v for k, v in ours.items()}


def from_hf_state_dict(hf: dict[str, torch.Tensor], where: str = "HF checkpoint") -> dict[str, torch.Tensor]:
    out = {}
    for k, v in hf.items():
        if k.endswith("rotary_emb.inv_freq"):  # a buffer some older exports saved; recomputed from rope_theta
            continue
        name = _hf_to_ours_name(k)
        if name is not None:
            out[name] = v
    if "lm_head.weight" in hf and "embed.weight" in out and not torch.equal(hf["lm_head.weight"], out["embed.weight"]):
        raise ValueError(f"{where}: lm_head.weight differs from model.embed_tokens.weight, but JetMoE ties them")
    return out


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def read_hf_folder(hf_dir: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(our config, our-named tensors) from a HF JetMoE folder: model.safetensors, a sharded index, or .bin."""
    hf_dir = Path(hf_dir)
    cfg_path = hf_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: {hf_dir} is not a Hugging Face model folder")
    try:
        hf_cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    cfg = from_hf_config(hf_cfg, str(cfg_path))
    tensors: dict[str, torch.Tensor] = {}
    if (hf_dir / "model.safetensors").is_file():
        tensors = _load_safetensors(hf_dir / "model.safetensors")
    elif (hf_dir / "model.safetensors.index.json").is_file():
        index = json.loads((hf_dir / "model.safetensors.index.json").read_text())
        for shard in sorted(set(index["weight_map"].values())):
            tensors.update(_load_safetensors(hf_dir / shard))
    else:
        bins = sorted(hf_dir.glob("pytorch_model*.bin"))
        if not bins:
            raise FileNotFoundError(f"{hf_dir}: no model.safetensors, model.safetensors.index.json or "
                                    "pytorch_model*.bin; download the weights (e.g. `hf download jetmoe/jetmoe-8b "
                                    "--local-dir DIR`)")
        for b in bins:
            tensors.update(torch.load(b, map_location="cpu", weights_only=True))
    ours = from_hf_state_dict(tensors, str(hf_dir))
    _check_shapes(ours, cfg, str(hf_dir))
    return cfg, ours


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder itself, or a run folder's newest checkpoints/step-* holding model.safetensors."""
    path = Path(path)
    if (path / WEIGHTS).is_file():
        return path
    steps = sorted(p for p in (path / "checkpoints").glob("step-*") if (p / WEIGHTS).is_file())
    if not steps:
        raise FileNotFoundError(f"{path}: neither a checkpoint (no {WEIGHTS}) nor a run folder with "
                                f"checkpoints/step-*/{WEIGHTS}; train first (`make phase1`) or pass a step folder")
    return steps[-1]


def is_chat_checkpoint(ckpt: Path) -> bool:
    """An SFT or DPO checkpoint: its train_state.json names the alignment stage that wrote it."""
    try:
        return json.loads((Path(ckpt) / "train_state.json").read_text()).get("stage") in ("sft", "dpo")
    except (OSError, ValueError):
        return False


def _tokenizer_config(tokenizer_json: Path, cfg: ModelConfig, chat: bool = False) -> dict:
    """tokenizer_config.json for PreTrainedTokenizerFast, naming only the special tokens the file has; a chat
    model's also holds the chat template and EOS as its pad token (as Zephyr's does)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    out: dict = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": cfg.max_seq_len,
                 "clean_up_tokenization_spaces": False}
    if tok.token_to_id("<unk>") is not None:
        out["unk_token"] = "<unk>"
    for key, tid in (("bos_token", cfg.bos_id), ("eos_token", cfg.eos_id)):
        token = tok.id_to_token(tid) if tid is not None else None
        if token is not None:
            out[key] = token
    if tok.get_vocab_size(with_added_tokens=True) > cfg.vocab_size:
        raise ValueError(f"{tokenizer_json}: {tok.get_vocab_size(with_added_tokens=True)} tokens, more than the "
                         f"model's vocab_size={cfg.vocab_size}; export with the corpus tokenizer the model was trained on")
    if chat:
        from jetmoe_core.chat import CHAT_TEMPLATE, EOS_TOKEN

        if out.get("eos_token") != EOS_TOKEN:
            raise ValueError(f"{tokenizer_json}: the chat template closes every turn with {EOS_TOKEN}, but the "
                             f"model's EOS (id {cfg.eos_id}) is {out.get('eos_token')!r}; export with the tokenizer "
                             f"the chat corpus was built with")
        out["chat_template"] = CHAT_TEMPLATE
        out["pad_token"] = out["eos_token"]
    return out


def run_dir_of(ckpt: Path) -> Path | None:
    """The run folder a checkpoint folder belongs to (<run>/checkpoints/step-*), or None."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None


def default_export_dir(path: str | Path) -> Path:
    """exports/<run name> for a run folder or one of its checkpoints; exports/<folder> for a bare checkpoint."""
    path = Path(path)
    run = path if (path / "checkpoints").is_dir() else run_dir_of(path.resolve()) or path
    return Path("exports") / run.resolve().name


def export_checkpoint(ckpt: str | Path, out_dir: str | Path | None = None, dtype: torch.dtype | None = None,
                      tokenizer: str | Path | None = None, force: bool = False, chat: bool | None = None) -> Path:
    """Write a HF JetMoeForCausalLM folder from one of our checkpoints (or a run's newest). `out_dir` defaults
    to exports/<run name>; an existing non-empty one is replaced only with `force` (and only if it holds an
    export and nothing else). `chat` (default: whether the checkpoint is from SFT or DPO) writes the chat
    template."""
    out_dir = Path(out_dir) if out_dir is not None else default_export_dir(ckpt)
    ckpt = resolve_checkpoint(ckpt)
    chat = is_chat_checkpoint(ckpt) if chat is None else chat
    cfg = read_model_config(ckpt)
    ours = _load_safetensors(ckpt / WEIGHTS)
    _check_shapes(ours, cfg, str(ckpt / WEIGHTS))
    if dtype is not None:
        ours = {k: v.to(dtype) for k, v in ours.items()}
    dtype = next(iter(ours.values())).dtype
    hf_cfg = to_hf_config(cfg, dtype)
    tok = Path(tokenizer) if tokenizer else ckpt / "tokenizer.json"
    if not tok.is_file():
        raise FileNotFoundError(f"{tok} not found: the export needs the corpus tokenizer; pass --tokenizer "
                                "shards/<corpus>/tokenizer.json")
    if cfg.tokenizer_sha256:
        got = sha256_file(tok)
        if got != cfg.tokenizer_sha256:
            raise ValueError(f"{tok}: sha256 {got} differs from the model's tokenizer_sha256 {cfg.tokenizer_sha256}")
    tok_cfg = _tokenizer_config(tok, cfg, chat)
    gen = {"bos_token_id": cfg.bos_id, "eos_token_id": cfg.eos_id, "do_sample": False}
    if chat:
        gen["pad_token_id"] = cfg.eos_id
    present = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    others = [n for n in present if n not in EXPORT_FILES]
    if others:
        raise ValueError(f"{out_dir}: holds files an export does not write ({', '.join(others[:5])}); an export "
                         f"replaces its folder as a whole, so it never writes over other files (not even with "
                         f"--force): pass a new or empty folder")
    if present and not force:
        raise ValueError(f"{out_dir}: holds an export already ({', '.join(present)}); it is not overwritten: pass "
                         f"--force to replace it (`make export FORCE=1`), or another out folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: is a file, not a folder; pass a folder for the export")
    run = run_dir_of(ckpt.resolve())
    run_config = run / "run_config.toml" if run is not None and (run / "run_config.toml").is_file() else None
    # Written into a temp folder beside out_dir and renamed into place: a failed or killed export leaves the
    # previous folder (or none), never a folder from_pretrained would half-load.
    tmp = out_dir.with_name(f".tmp-{out_dir.name}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_safetensors(to_hf_state_dict(ours), tmp / "model.safetensors", {"format": "pt"})
        for name, obj in (("config.json", hf_cfg), ("generation_config.json", gen),
                          ("tokenizer_config.json", tok_cfg)):
            (tmp / name).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        shutil.copyfile(tok, tmp / "tokenizer.json")
        if run_config is not None:  # provenance: what the model was trained on and how
            shutil.copyfile(run_config, tmp / "run_config.toml")
        install_folder(tmp, out_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise IOFault.from_os_error(e, "writing the export", e.filename or tmp,
                                    then=f"nothing was written to {out_dir}") from None
    return out_dir


def import_hf(hf_dir: str | Path, ckpt_dir: str | Path) -> Path:
    """Write one of our checkpoints (model.safetensors + model_config.json [+ tokenizer.json]) from a HF folder."""
    hf_dir, ckpt_dir = Path(hf_dir), Path(ckpt_dir)
    cfg, ours = read_hf_folder(hf_dir)
    try:
        if (hf_dir / "tokenizer.json").is_file():
            data = (hf_dir / "tokenizer.json").read_bytes()
            cfg = cfg.replace(tokenizer_sha256=hashlib.sha256(data).hexdigest())
            write_bytes_atomic(ckpt_dir / "tokenizer.json", data)
        save_safetensors_atomic({k: v.contiguous() for k, v in sorted(ours.items())}, ckpt_dir / WEIGHTS,
                                {"format": "pt"})
        # the config last: a folder without it is not a checkpoint to any reader
        write_json_atomic(ckpt_dir / CONFIG, cfg.to_dict(), sort_keys=True)
    except OSError as e:
        raise IOFault.from_os_error(e, "writing the imported checkpoint", e.filename or ckpt_dir) from None
    return ckpt_dir


def _summary(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(title)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def export_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer export", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="a checkpoint folder (step-*) or a run folder (its newest checkpoint)")
    ap.add_argument("out_dir", nargs="?",
                    help="the Hugging Face folder to write (default: exports/<run name>); never overwritten "
                         "without --force")
    ap.add_argument("--dtype", choices=sorted(_DTYPES), help="cast the weights (default: as stored)")
    ap.add_argument("--tokenizer", help="tokenizer.json to ship (default: the checkpoint's)")
    ap.add_argument("--force", action="store_true",
                    help="replace an earlier export in out_dir (a folder holding other files is never replaced)")
    ap.add_argument("--chat", action="store_true", help="write the chat template (default: only for an SFT or DPO "
                                                        "checkpoint)")
    args = ap.parse_args(argv)
    try:
        ckpt = resolve_checkpoint(args.checkpoint)
        out_dir = args.out_dir or default_export_dir(args.checkpoint)
        chat = True if args.chat else None
        out = export_checkpoint(ckpt, out_dir, _DTYPES.get(args.dtype), args.tokenizer, force=args.force, chat=chat)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 1
    chat_line = [("chat", "tokenizer_config.json holds the chat template: tokenizer.apply_chat_template(messages, "
                          "add_generation_prompt=True) → model.generate")] if chat or is_chat_checkpoint(ckpt) else []
    _summary_of(f"exported {ckpt} -> {out}", ckpt, out,
                [("load with", f"transformers.AutoModelForCausalLM.from_pretrained({str(out)!r})"), *chat_line])
    return 0


def import_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer import-hf",
                                 description="Read a Hugging Face JetMoE folder into one of our checkpoints.")
    ap.add_argument("hf_dir", help="folder with config.json + safetensors (e.g. a jetmoe/jetmoe-8b download)")
    ap.add_argument("checkpoint", help="checkpoint folder to write (model.safetensors + model_config.json)")
    args = ap.parse_args(argv)
    try:
        out = import_hf(args.hf_dir, args.checkpoint)
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"import-hf: error: {e}", file=sys.stderr)
        return 1
    _summary_of(f"imported {args.hf_dir} -> {out}", out, out, [])
    return 0


def _summary_of(title: str, ckpt: Path, out: Path, extra: list[tuple[str, str]]) -> None:
    """The closing table of export / import-hf: files written, parameter counts, shape."""
    from .flops import count_params
    cfg = read_model_config(ckpt)
    total, active = count_params(cfg)
    _summary(title, [
        ("files", ", ".join(sorted(p.name for p in out.iterdir()))),
        ("params", f"{total:,} total, {active:,} active"),
        ("shape", f"{cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_experts} experts top-{cfg.top_k}"),
        *extra,
    ])
