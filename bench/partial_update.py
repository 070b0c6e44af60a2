"""How long a weight update waits for the in-process HF sampler: cut mid-decode vs a turn boundary.

A batch of turns decodes on a tiny Llama (CPU, one thread); at a random moment inside the batch
an update is asked for. Two waits are measured on the same batch, seeds and moment:

* **mid-decode** (what ``HFPolicy.sync_weights`` does now): from the request to ``sync_weights``
  returning, with the new weights loaded (the batch stops at its next token);
* **turn boundary** (the baseline, what an update waited for before): from the request to the end
  of the batch in flight, when the old lock was released.

The update loads an identical copy of the weights, so both runs decode the same tokens (tested
in tests/policy/test_partial.py) and the batch's length is the same. Prints the medians and p90s
and their ratio.

    .venv/bin/python bench/partial_update.py [--reps 12] [--rows 8] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import random
import statistics
import time

import torch

from agentrl.policy import HFPolicy, SamplingParams
from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer


def requests(tokenizer, rows: int, max_tokens: int, rep: int):
    prompts = [tokenizer(f"You are in a grid maze, turn {rep}.{i}").input_ids for i in range(rows)]
    # A spread of budgets: the batch ends with its longest turn.
    return [(p, SamplingParams(max_tokens=max(8, max_tokens * (i + 1) // rows), seed=1000 * rep + i))
            for i, p in enumerate(prompts)]


async def batch_seconds(policy, batch) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(policy.generate(p, s) for p, s in batch))
    return time.perf_counter() - start


async def boundary_wait(policy, batch, at: float) -> float:
    """The update asked ``at`` s into the batch waits for the batch to end."""
    turns = asyncio.gather(*(policy.generate(p, s) for p, s in batch))
    await asyncio.sleep(at)
    asked = time.perf_counter()
    await turns
    return time.perf_counter() - asked


async def mid_decode_wait(policy, batch, at: float, weights) -> tuple[float, int]:
    turns = asyncio.gather(*(policy.generate(p, s) for p, s in batch))
    await asyncio.sleep(at)
    asked = time.perf_counter()
    await policy.sync_weights(weights)
    waited = time.perf_counter() - asked
    outs = await turns
    cut = [o for o in outs if o.token_versions is not None]
    return waited, len(cut)


async def main(args) -> None:
    torch.set_num_threads(1)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=256, intermediate_size=512, num_layers=4)
    policy = HFPolicy(copy.deepcopy(model), tokenizer, max_batch_size=args.rows, max_wait_s=0.02)
    rng = random.Random(0)
    boundary, mid, cut_rows, lengths = [], [], 0, []
    for rep in range(args.reps):
        batch = requests(tokenizer, args.rows, args.max_tokens, rep)
        length = await batch_seconds(policy, batch)
        at = rng.uniform(0.1, 0.9) * length
        boundary.append(await boundary_wait(policy, batch, at))
        waited, cut = await mid_decode_wait(policy, batch, at, model)
        mid.append(waited)
        cut_rows += cut
        lengths.append(length)
    await policy.aclose()

    def p90(xs):
        return sorted(xs)[int(0.9 * (len(xs) - 1))]

    print(f"{args.reps} batches of {args.rows} turns (budgets up to {args.max_tokens} tokens), "
          f"batch decode median {statistics.median(lengths):.3f} s; {cut_rows} turns cut mid-decode")
    print(f"update wait, turn boundary (baseline): median {statistics.median(boundary) * 1e3:.1f} ms, "
          f"p90 {p90(boundary) * 1e3:.1f} ms")
    print(f"update wait, mid-decode:               median {statistics.median(mid) * 1e3:.1f} ms, "
          f"p90 {p90(mid) * 1e3:.1f} ms")
    print(f"ratio (baseline / mid-decode): median {statistics.median(boundary) / statistics.median(mid):.1f}x, "
          f"p90 {p90(boundary) / p90(mid):.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    asyncio.run(main(parser.parse_args()))
