"""The training configuration: one pydantic model, every field documented.

``sftdata train --config train.yaml`` validates a YAML file against ``TrainConfig``
(unknown keys are an error, so a typo never silently falls back to a default), and the
command-line flags fill the same model. No torch import here: the CLI can validate a
config without loading the training stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sftdata.errors import UserError

DEFAULT_LR = {"lora": 2e-4, "qlora": 2e-4, "full": 2e-5, "freeze": 5e-5}


class TrainConfig(BaseModel):
    """Everything a training run needs; saved as ``train_config.yaml`` in the output dir."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Data
    data: str = Field(description="Training data file, any format sftdata reads (converted to canonical records).")
    data_format: str | None = Field(default=None, description="Force the input format (alpaca, sharegpt, openai, canonical); detected when unset.")
    eval_data: str | None = Field(default=None, description="Held-out data file for eval loss; when unset, `eval_split` of the training data is held out.")
    eval_split: float = Field(default=0.0, ge=0.0, lt=1.0, description="Fraction of the training records held out for eval loss when no `eval_data` is given.")
    max_eval_records: int = Field(default=200, ge=1, description="At most this many held-out records are used for eval loss (keeps eval fast).")
    chat_template: str | None = Field(default=None, description="A Jinja chat template file that replaces the tokenizer's, or a bundled one: `chatml`, `chatml-tools` (ChatML that writes tools and tool calls, for ChatML models like SmolLM2 whose own template drops them). The tokenizer's own is used when unset (ChatML when it has none); the trained model is saved with the template it was trained with.")
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra variables for the chat template, e.g. {enable_thinking: false} for Qwen3.")
    max_length: int = Field(default=2048, ge=8, description="Longest tokenised conversation. Longer ones are cut at the end of the last whole trained turn that fits; with `train_on: last` earlier turns are dropped from the left instead.")
    train_on: Literal["assistant", "last", "all", "weight"] = Field(default="assistant", description="Which turns train: `assistant` = every message whose role is in `train_roles`; `last` = only the last of them (earlier turns are context); `weight` = as `assistant`, plus any other message with an explicit `weight` > 0; `all` = every token. In every mode but `all` a message's `weight` scales its loss (0 = not trained, 0.5 = half the pull): the step loss is divided by the number of trained tokens, not by the sum of weights.")
    train_roles: list[str] = Field(default_factory=lambda: ["assistant"], description="Roles whose messages train (with `train_on` assistant, last or weight). An assistant turn trains from the end of its header to its end-of-turn; other roles train their own text.")
    train_on_eot: Literal["turn", "last", "none"] = Field(default="turn", description="Train the template's end-of-turn token after every trained turn (`turn`, so the model learns to stop), only after the last one, or never.")
    split_turns: Literal["auto", "never", "always"] = Field(default="auto", description="`auto`: a turn whose reasoning (<think>...</think>) the template drops from the conversation (Qwen3, DeepSeek-R1 drop it from earlier turns) trains in an example of its own that ends at it, where the template keeps it, as the model sees the conversation when it writes that turn. `never`: every turn trains as written in the whole conversation (counted as reasoning_not_rendered). `always`: one example per trained turn.")
    tokenize_workers: int | None = Field(default=None, ge=1, description="Processes that tokenise the data in parallel (Linux); unset = the cores this process may use, at most 16.")
    tokenize_cache: bool = Field(default=True, description="Keep the tokenised data in `$SFTDATA_CACHE/tokenised/` (keyed by the records, tokenizer, chat template and mask settings) so a rerun, a resume, or the other processes of a multi-GPU run do not tokenise again.")
    force: bool = Field(default=False, description="Train even when the mask check finds turns that would train nothing or wrongly (see `sftdata masks`).")
    packing: bool = Field(default=True, description="Padding-free packing: sequences share rows (best-fit decreasing) with per-sequence position ids. Off: batches grouped by length and padded.")
    pack_length: int | None = Field(default=None, ge=8, description="Tokens per packed row; a conversation longer than this gets a row of its own. A micro-batch is `batch_size` rows. Unset: `max_length`, on CPU at most 512 (see `sftdata.trainer.defaults`).")
    forward_tokens: int | None = Field(default=None, ge=8, description="Most tokens (rows x longest row, padding included) in one forward pass: a bigger micro-batch runs in parts of whole rows, with the same gradient (the loss is normalised by the step's trained tokens). Unset: on CPU 512 (or one row, if longer; see `sftdata.trainer.defaults`), on GPU the whole micro-batch.")

    # Model and method
    model: str | None = Field(default=None, description="Local model folder; unset = the bundled SmolLM2-135M-Instruct. Nothing is downloaded.")
    method: Literal["lora", "qlora", "full", "freeze"] = Field(default="lora", description="lora: train low-rank adapters; qlora: LoRA on a 4-bit (NF4) base, needs a CUDA GPU and the bitsandbytes package; full: every weight; freeze: only the last `freeze_trainable_layers` layers (and the final norm).")
    lora_r: int = Field(default=16, ge=1, description="LoRA rank.")
    lora_alpha: float = Field(default=32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    lora_target: list[str] | Literal["all-linear"] = Field(default="all-linear", description="Module names to adapt, or `all-linear` for every linear layer except the output head.")
    lora_dora: bool = Field(default=False, description="DoRA: LoRA that also learns each weight column's magnitude (peft use_dora); closer to a full fine-tune at small ranks, slower steps.")
    lora_rslora: bool = Field(default=False, description="rsLoRA: scale adapters by alpha / sqrt(r) instead of alpha / r, so high ranks keep learning.")
    lora_init: Literal["default", "gaussian", "pissa", "olora"] = Field(default="default", description="Adapter initialisation: `default` (B = 0), `gaussian`, `pissa` (the principal singular vectors of each weight, fast randomised SVD; the base keeps the residual) or `olora` (QR of each weight). pissa/olora change the base weights too: the saved adapter is converted back to one for the original base (merge works on the original model).")
    loraplus_lr_ratio: float | None = Field(default=None, gt=0, description="LoRA+: the learning rate of the adapters' B matrices is this many times `learning_rate` (16 is the paper's value); unset = the same rate.")
    modules_to_save: list[str] = Field(default_factory=list, description="lora/qlora: modules trained in full beside the adapters and saved with them, e.g. [lm_head, embed_tokens] or a classifier head.")
    special_tokens: list[str] = Field(default_factory=list, description="Tokens added to the tokenizer as special tokens (the embedding matrix grows; new rows start at the mean embedding and train). With `chat_template: chatml` on a tokenizer without ChatML's <|im_start|> and <|im_end|> they are added too. With lora the new rows train (peft trainable_token_indices), not the whole matrix.")
    neftune_alpha: float | None = Field(default=None, gt=0, description="NEFTune: uniform noise of scale alpha / sqrt(tokens * hidden) on the input embeddings while training (5 is the paper's value); unset = off.")
    freeze_trainable_layers: int = Field(default=2, ge=1, description="freeze method: how many of the last transformer layers are trained (at most the model's layer count), with the final norm.")
    attn_implementation: str = Field(default="auto", description="transformers attention implementation. auto: flash attention on a GPU when a flash-attention package is installed (FA3, then FA2), else sdpa. sdpa and eager get packed rows side by side, each with its own block-diagonal mask; flash-attention kernels get the rows flattened into one, their boundaries in the position ids.")
    cross_entropy: Literal["auto", "fused", "liger", "plain"] = Field(default="auto", description="How the loss meets the vocabulary. fused: the output head and cross-entropy run `loss_chunk_tokens` trained tokens at a time with their gradients in the same pass, so the full fp32 logits never exist; liger: Liger's fused kernel (liger-kernel package, GPU; steps with per-token weights other than 1 use fused); plain: logits of every trained token at once. auto: liger when installed on a GPU, else fused.")
    loss_chunk_tokens: int = Field(default=1024, ge=1, description="Trained tokens per chunk of the fused loss: its peak is this many x vocabulary x 4 bytes (1024 x 152k = 0.6 GiB).")
    threads: int | None = Field(default=None, ge=1, description="torch threads on CPU; unset = every core, or 1 when other processes already keep the machine busy.")

    # Optimisation
    learning_rate: float | None = Field(default=None, gt=0, description="Peak learning rate; unset = 2e-4 for lora, 2e-5 for full, 5e-5 for freeze.")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay (not applied to biases and norms).")
    adam_betas: tuple[float, float] = Field(default=(0.9, 0.999), description="AdamW betas.")
    lr_scheduler: Literal["linear", "cosine", "constant"] = Field(default="cosine", description="Decay after warmup: linear or cosine to zero, or constant.")
    warmup_ratio: float = Field(default=0.03, ge=0.0, le=1.0, description="Fraction of the optimizer steps used for linear warmup.")
    epochs: float = Field(default=1.0, gt=0, description="Passes over the training data (fractions allowed).")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps (overrides `epochs`).")
    batch_size: int = Field(default=8, ge=1, description="Micro-batch: sequences (unpacked) or packed rows (packing) per forward pass.")
    grad_accum: int = Field(default=1, ge=1, description="Micro-batches per optimizer step; the loss is normalised by the trained tokens of the whole step.")
    max_grad_norm: float | None = Field(default=1.0, gt=0, description="Clip the global gradient norm to this value; unset = no clipping.")
    gradient_checkpointing: bool | None = Field(default=None, description="Recompute activations in the backward pass: a sixth of the memory, about a third more compute. Unset: on for CPU (memory is what a laptop runs out of), off on GPU.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(default="auto", description="Precision of the weights as loaded and of the forward pass: auto = float32 on CPU (no bf16 units), bfloat16 on GPUs that have it, float16 with dynamic loss scaling on those that do not (T4, V100). TF32 matrix products are on for what stays fp32 on a GPU. Trained weights stay fp32 (see `trainable_dtype`).")
    trainable_dtype: Literal["float32", "model"] = Field(default="float32", description="dtype of the weights that train (full/freeze; LoRA adapters are always fp32): float32 master weights (exact small updates), or `model` = the load dtype (pure bf16: half the memory of a full fine-tune, updates below bf16's resolution are lost; fp16 runs always use float32).")
    save_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(default="auto", description="dtype of the saved model (method full or freeze): auto = the base model's dtype, so a bf16 base gives a bf16 model.")
    seed: int = Field(default=42, description="Seeds data order, held-out split, dropout and initialisation of adapters.")

    # Logging, eval, checkpoints
    output_dir: str = Field(description="Where the adapter or model, tokenizer, metrics.jsonl and checkpoints are written.")
    log_every: int = Field(default=1, ge=1, description="Write a metrics line every N optimizer steps.")
    eval_every: int | None = Field(default=None, ge=1, description="Eval loss every N optimizer steps (and at the end) when there is held-out data.")
    save_every: int | None = Field(default=None, ge=1, description="Write a resumable checkpoint every N optimizer steps.")
    keep_checkpoints: int = Field(default=2, ge=1, description="Keep only the newest N checkpoints.")
    resume: bool = Field(default=False, description="Continue from the newest checkpoint in `output_dir` (same data, same seed).")
    overwrite: bool = Field(default=False, description="Starting afresh (no `resume`) in an `output_dir` that has checkpoints: delete them. Without it they are kept, moved with their metrics and config to `earlier-<time>/`.")
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(default_factory=list, description="Also send the metrics to these trackers (each needs its package: tensorboard, wandb, mlflow); off by default. tensorboard writes under `output_dir/tensorboard`; wandb and mlflow take their project/experiment and server from their usual environment variables (WANDB_PROJECT, MLFLOW_TRACKING_URI...).")
    tensorboard: bool = Field(default=False, description="Same as adding tensorboard to `report_to`.")
    early_stopping_patience: int | None = Field(default=None, ge=1, description="Stop when the eval loss has not improved by more than `early_stopping_threshold` for this many evals in a row (needs held-out data and `eval_every`).")
    early_stopping_threshold: float = Field(default=0.0, ge=0.0, description="Smallest drop of the eval loss that counts as an improvement.")
    load_best: bool = Field(default=False, description="Save the weights of the step with the lowest eval loss instead of the last step's (needs held-out data and `eval_every`); summary.json names the step.")
    progress: bool = Field(default=True, description="Show a progress bar.")

    # Samples
    sample_prompts: list[str] = Field(default_factory=list, description="Prompts to generate from after training; unset = up to `num_samples` held-out prompts.")
    num_samples: int = Field(default=2, ge=0, description="How many held-out prompts to sample from when `sample_prompts` is empty.")
    sample_max_new_tokens: int = Field(default=64, ge=1, description="Longest sample generation.")

    @property
    def lr(self) -> float:
        """The learning rate in effect (the method's default when unset)."""
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.method]

    @property
    def row_length(self) -> int:
        """Tokens per packed row."""
        return self.pack_length or self.max_length


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    return f"{where}: {first['msg']}" + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")


def build_config(values: dict) -> TrainConfig:
    """Validate a dict into a TrainConfig; problems become one-line UserErrors."""
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise UserError(f"invalid training config: {_describe(exc)}") from None


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """Read a YAML config file, apply non-None ``overrides`` (from flags), validate."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: a training config must be a mapping of field: value")
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_config(values)
