"""The masked loss: ``sum(weight * cross_entropy)`` over trained positions, for one micro-batch.

Computed here rather than by the model so that (1) the output head only runs on trained
positions (prompts are untrained), (2) per-token weights are honoured, (3) gradient
accumulation can normalise by the trained tokens of the whole step, and (4) the
vocabulary-sized logits are never held whole: 16k trained tokens x a 152k vocabulary is
9.3 GiB in fp32 per copy, and a plain cross-entropy keeps two (logits, and their softmax
for the backward pass).

Three ways, ``cross_entropy`` in the config:

- ``fused`` (default without Liger): the model returns its final hidden states; the head
  and the loss run ``chunk`` trained tokens at a time, and the gradient of each chunk
  (with respect to the hidden states and, if it trains, the head's weight) is computed in
  the same pass (``FusedLinearCrossEntropy``). At most one chunk's fp32 logits exist at
  any time, and nothing vocabulary-sized is kept for the backward pass.
- ``liger``: Liger's fused linear cross-entropy kernel (``liger-kernel``, CUDA): the same
  idea in Triton. Used by ``auto`` when installed, on a GPU, for steps whose weights are all
  1 (it has no per-token weights; other steps use ``fused``).
- ``plain``: the model's logits at trained positions, upcast, ``F.cross_entropy``.

The head is used directly only when it is a plain ``nn.Linear`` whose output the model
returns unchanged (no soft-capping or logit scale: checked against the model's own logits
for one position on the first batch) and not sharded (FSDP); otherwise ``plain``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 1024
_PLAIN = "_sftdata_plain_head"  # set on a head module once checked: its logits are h @ W.T (+ b)
# Config fields of heads whose logits are not the bare projection.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale", "logits_scaling")


class FusedLinearCrossEntropy(torch.autograd.Function):
    """``sum(weights * cross_entropy(hidden @ weight.T + bias, targets))``, ``chunk`` rows at a
    time, with the gradients computed in the forward pass (so backward keeps nothing of
    vocabulary size). ``hidden``: [N, H]; ``weight``: [V, H]; ``targets``, ``weights``: [N]."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, weights, chunk, compute_dtype=None, with_grad=True):  # noqa: D102
        compute = compute_dtype or hidden.dtype
        ctx.hidden_dtype = hidden.dtype
        w = weight.to(compute)
        b = None if bias is None else bias.to(compute)
        need_w = with_grad and weight.requires_grad
        need_b = with_grad and bias is not None and bias.requires_grad
        grad_hidden = torch.empty_like(hidden) if with_grad and hidden.requires_grad else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start:start + chunk]
            t, tw = targets[start:start + chunk], weights[start:start + chunk].float()
            logits = F.linear(h.to(compute), w, b).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += ((lse - logits.gather(1, t[:, None]).squeeze(1)) * tw).sum()
            # d(w * ce)/d(logits) = w * (softmax - onehot), written over the logits in place.
            if not with_grad:
                continue
            grad = logits.sub_(lse[:, None]).exp_()
            grad[torch.arange(len(t), device=t.device), t] -= 1.0
            grad.mul_(tw[:, None])
            grad_c = grad.to(compute)
            if grad_hidden is not None:
                grad_hidden[start:start + chunk] = grad_c @ w
            if need_w:
                grad_weight += (grad_c.t() @ h.to(compute)).float()
            if need_b:
                grad_bias += grad.sum(0)
            del logits, grad, grad_c
        ctx.save_for_backward(*(g for g in (grad_hidden, grad_weight, grad_bias) if g is not None))
        ctx.present = (grad_hidden is not None, need_w, need_b)
        ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        saved = list(ctx.saved_tensors)
        has_h, has_w, has_b = ctx.present
        grads = []
        for present, dtype in zip((has_h, has_w, has_b), (ctx.hidden_dtype, *ctx.dtypes)):
            grads.append((saved.pop(0) * grad_output).to(dtype) if present else None)
        return (*grads, None, None, None, None, None)


def _liger_available() -> bool:
    try:
        import liger_kernel  # noqa: F401
    except ImportError:
        return False
    return True


def choose(mode: str, on_cuda: bool) -> str:
    """The loss path for config ``mode`` (auto | fused | liger | plain) on this device.

    >>> choose("auto", on_cuda=False)
    'fused'
    """
    if mode == "auto":
        return "liger" if on_cuda and _liger_available() else "fused"
    if mode == "liger" and not _liger_available():
        from sftdata.errors import UserError

        raise UserError("cross_entropy: liger needs the liger-kernel package (pip install liger-kernel) and a GPU")
    return mode


def _unwrap(model: Any) -> Any:
    """The transformers model inside DDP / peft wrappers."""
    inner = getattr(model, "module", model)
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner


def output_head(model: Any) -> torch.nn.Linear | None:
    """The output projection when the loss may apply it itself (a plain, unsharded
    ``nn.Linear``), else None."""
    inner = _unwrap(model)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if type(head) is not torch.nn.Linear:  # peft wrappers (lm_head adapted or saved), custom heads
        return None
    if type(head.weight).__name__ == "DTensor":  # FSDP2: sharded outside the model's forward
        return None
    config = getattr(inner, "config", None)
    if any(getattr(config, name, None) not in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS):
        return None
    return head


def _apply_head_loss(path: str, head: torch.nn.Linear, hidden: torch.Tensor, targets: torch.Tensor,
                     weights: torch.Tensor, chunk: int, compute_dtype: torch.dtype | None) -> torch.Tensor:
    if path == "liger" and hidden.is_cuda and bool((weights == 1).all()):
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

        weight, bias = head.weight, head.bias
        if compute_dtype is not None:  # fp32 master weights: the kernel runs in the autocast dtype
            hidden, weight = hidden.to(compute_dtype), weight.to(compute_dtype)
            bias = None if bias is None else bias.to(compute_dtype)
        return LigerFusedLinearCrossEntropyLoss(reduction="sum")(weight, hidden, targets, bias).float()
    return FusedLinearCrossEntropy.apply(hidden, head.weight, head.bias, targets, weights, chunk, compute_dtype,
                                         torch.is_grad_enabled())


def loss_sum(model: Any, batch: dict[str, torch.Tensor], cross_entropy: str = "fused",
             chunk: int = DEFAULT_CHUNK, compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Sum over trained targets of ``weight * cross_entropy`` (fp32), for one micro-batch.

    ``cross_entropy``: fused | liger | plain (see the module docstring; ``choose`` resolves
    auto); ``compute_dtype``: the head's matmul dtype under mixed precision (None: the
    hidden states' own).

    Packed batches carry ``position_ids`` (and, for sdpa/eager, a block mask);
    ``use_cache=False`` is required there, or transformers skips the packed-sequence mask.
    """
    weights = batch["weights"]
    keep = weights > 0
    inputs = {"input_ids": batch["input_ids"]}
    for key in ("position_ids", "attention_mask"):
        if key in batch:
            inputs[key] = batch[key]
    # The positions trained in any row, as 1-D indices: transformers 4.5x and 5.x both take
    # that for logits_to_keep (5.x also takes a boolean mask, 4.5x raises on one).
    positions = keep.any(dim=0).nonzero().squeeze(-1)
    head = output_head(model) if cross_entropy != "plain" else None
    if head is not None and getattr(head, _PLAIN, True):
        # Logits for one position only (to check the head once); the loss applies the head itself.
        out = model(**inputs, use_cache=False, logits_to_keep=positions[-1:], output_hidden_states=True)
        hidden = out.hidden_states[-1]
        if not hasattr(head, _PLAIN):
            with torch.no_grad():
                own = F.linear(hidden[:, positions[-1:]].to(out.logits.dtype), head.weight.to(out.logits.dtype),
                               None if head.bias is None else head.bias.to(out.logits.dtype)).float()
                setattr(head, _PLAIN, torch.allclose(own, out.logits.float(), rtol=2e-2, atol=2e-2))
        if getattr(head, _PLAIN):
            return _apply_head_loss(cross_entropy, head, hidden[keep], batch["targets"][keep],
                                    weights[keep], chunk, compute_dtype)
    out = model(**inputs, use_cache=False, logits_to_keep=positions)
    logits = out.logits[keep[:, positions]].float()
    ce = F.cross_entropy(logits, batch["targets"][keep], reduction="none")
    return (ce * weights[keep]).sum()
