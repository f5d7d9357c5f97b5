"""Phase 3: alignment, as the paper's chat model was made (distilled SFT, then distilled DPO; Zephyr's recipe).

    python -m trainer sft trainer/configs/align/sft-tiny.toml --run-dir runs/tiny-sft    # make sft
    python -m trainer dpo trainer/configs/align/dpo-tiny.toml --run-dir runs/tiny-dpo    # make dpo

Modules, in the order a run uses them:
  config    the SFT and DPO run configs (the paper's hyperparameters as defaults)
  data      the chat corpus's conversations and pairs, memory-mapped, with the row-length policy
  batches   which rows each step takes (epochs of seeded permutations) and their padded micro-batches
  losses    token and sequence log-probabilities, the DPO sigmoid loss (TRL's definitions)
  schedule  warmup + cosine (transformers' get_cosine_schedule_with_warmup)
  step      one SFT or DPO optimizer step, and the validation of each
  build     the starting checkpoint, the data, the step plan, resume, the models (policy, reference)
  run       the commands and the loop (logs, validation, checkpoints)
  chat_score  `trainer score --chat`: the NLL of the assistant turns of conversations in a JSONL file
docs/alignment.md describes the stages, what they guarantee and what they cost.
"""
