"""IFD scoring throughput: the ``ifd`` step (batched, length-bucketed) against the
straightforward per-record loop in the style of Cherry LLM's ``data_analysis.py``,
side by side in one run, on the same records, model and threads.

The loop does what that script does for each record: encode the whole text (prompt +
answer) and the answer alone, run one forward pass per text with ``labels`` (the
prompt tokens masked with -100), and collect the per-token losses in a Python loop over
positions. The texts are the chat-template renderings the step itself scores, so both
sides see the same tokens; the script checks that the IFD values agree.

    python benchmarks/selection/ifd_speed.py                    # 32 records, 3 runs each (~10 min on 2 CPU cores)
    python benchmarks/selection/ifd_speed.py --device cuda --model /models/Qwen2.5-1.5B-Instruct --records 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REALWORLD = HERE.parents[1].parent / "shared" / "data" / "realworld"


def cherry_style_ifd(lm, records: list[dict], max_length: int) -> list[float]:
    """One forward pass per record per side, as Cherry LLM's analysis loop does."""
    import torch

    from sftdata.trainer.data import render, template_messages

    tok, model, device = lm.tokenizer, lm.model, lm.device
    log_softmax, nll = torch.nn.LogSoftmax(dim=-1), torch.nn.NLLLoss(reduction="none")

    def answer_loss(text: str, answer_start: int) -> float:
        ids = tok.encode(text, return_tensors="pt", truncation=True, max_length=max_length,
                         add_special_tokens=False).to(device)
        start = len(tok.encode(text[:answer_start], add_special_tokens=False))
        labels = ids.clone()
        labels[0, :start] = -100
        with torch.no_grad():
            out = model(ids, labels=labels)
        losses = []  # the per-token loss list the original script keeps
        for i in range(1, ids.shape[1]):
            losses.append(nll(log_softmax(out.logits[0, i - 1]).unsqueeze(0), ids[0, i].unsqueeze(0)).item())
        return float(out.loss)

    values = []
    for record in records:
        messages = template_messages(record["messages"])
        prompt = render(tok, messages[:-1], add_generation_prompt=True)
        whole = render(tok, messages)
        head = render(tok, [{"role": "system", "content": ""}], add_generation_prompt=True)
        alone = render(tok, [{"role": "system", "content": ""}, messages[-1]])
        values.append(answer_loss(whole, len(prompt)) / answer_loss(alone, len(head)))
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", help="local causal LM folder (default: bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)

    import torch

    from sftdata.convert import read_canonical
    from sftdata.records import frame_from_records, records_from_frame
    from sftdata.steps import lm_losses
    from sftdata.steps.registry import build_step

    if args.threads:
        torch.set_num_threads(args.threads)
    frame = read_canonical(REALWORLD / "alpaca_en_demo.json").frame.head(args.records)
    records = records_from_frame(frame)
    lm = lm_losses.load_lm(args.model, args.device)
    step = build_step("ifd", {"model": args.model, "device": args.device, "max_length": args.max_length,
                              "batch_tokens": args.batch_tokens, "cache": False, "progress": False})
    step_load = lm_losses.load_lm
    lm_losses.load_lm = lambda *a, **k: lm  # both sides use the one loaded model
    print(f"{len(records)} records, max_length {args.max_length}, device {lm.device}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}", flush=True)
    ours, theirs, ours_values, their_values = [], [], None, None
    try:
        for run in range(args.runs):
            t0 = time.perf_counter()
            kept = step(frame_from_records(records)).kept
            ours.append(time.perf_counter() - t0)
            import json

            ours_values = [json.loads(m)["ifd"] for m in kept["meta"].to_list()]
            t0 = time.perf_counter()
            their_values = cherry_style_ifd(lm, records, args.max_length)
            theirs.append(time.perf_counter() - t0)
            print(f"run {run + 1}: ifd step {len(records) / ours[-1]:.2f} rec/s, per-record loop "
                  f"{len(records) / theirs[-1]:.2f} rec/s (load {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        lm_losses.load_lm = step_load
    ours_rate = len(records) / statistics.median(ours)
    their_rate = len(records) / statistics.median(theirs)
    diff = max(abs(a - b) for a, b in zip(ours_values, their_values))
    print(f"\nIFD throughput, median of {args.runs} runs (records/s):")
    print(f"  sftdata ifd step (packed, bucketed): {ours_rate:8.2f}")
    print(f"  per-record loop (Cherry LLM style):  {their_rate:8.2f}")
    print(f"  ratio: {ours_rate / their_rate:.2f}x   largest IFD difference: {diff:.2e}")
    print(f"  load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
