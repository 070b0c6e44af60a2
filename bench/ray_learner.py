"""Learner step time on Ray, in one run: one process vs 2 learner ranks on the same batch.

* **Model** — a random-init Llama (``--hidden 256 --layers 4``: about 3.5 M parameters, real
  transformers code), float32 on CPU; KL to a frozen reference (the default config's 0.1).
* **Batch** — ``--rows`` token rows of 96–320 tokens (70 % of them policy tokens), behaviour
  log-probabilities near the model's; one PPO epoch, one mini-batch, micro-batches of 4096 token
  slots — one optimizer step per update.
* **1 rank** — :class:`~agentrl.train.learner.Learner` in this process (1 torch thread).
* **2 ranks** — :class:`~agentrl.cluster.learner.LearnerGroup` with ``learner_ranks: 2`` on a
  local Ray instance (gloo, FSDP2, 1 torch thread each). Its time is the trainer's whole wait for
  an update: shipping the rows, both ranks' forward/backward with FSDP's all-gathers and
  reduce-scatters, the step, and the full weights gathered back into the trainer's model.

Each side runs ``--warmup`` updates first (actor start-up excluded), then ``--repeats`` timed
ones; the figure is the median seconds per update and the ratio 1 rank / 2 ranks (> 1: the group
is faster). Both sides start from the same weights and train the same batch, so their losses
are printed side by side as a check.

On the shared 2-core machine this was written on, two ranks cannot show compute scaling: the
two processes share the cores with each other and with every other job, so the ratio measures
the group's overhead more than its parallelism. Run it on a machine with a free core per rank
(or GPUs: ``cluster.learner_gpus``) for a scaling figure.

Run: ``.venv/bin/python bench/ray_learner.py`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch


def build_rows(model, rows: int, seed: int = 0):
    from agentrl.rollout.batch import TokenRow
    from agentrl.train.loss import token_logprobs_and_entropy

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rows):
        length = int(rng.integers(96, 320))
        ids = rng.integers(3, 500, size=length).tolist()
        prompt = length * 3 // 10
        mask = [0] * prompt + [1] * (length - prompt)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[:, :-1]
            logp, _ = token_logprobs_and_entropy(logits, torch.tensor([ids[1:]]), with_entropy=False)
        old = [0.0] + (logp[0] + torch.from_numpy(rng.normal(0, 0.05, length - 1)).float()).tolist()
        adv = float(rng.normal())
        out.append(TokenRow(ids, mask, old, [adv * m for m in mask]))
    return out


def timed(update, rows, warmup: int, repeats: int) -> tuple[float, float]:
    """Median seconds per update after ``warmup`` untimed ones; the last update's loss."""
    for _ in range(warmup):
        update(rows)
    seconds, loss = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        loss = update(rows)["loss"]
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="8 rows, 1 warm-up, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.warmup, args.repeats = 8, 1, 3

    import ray

    from agentrl.cluster import ClusterConfig
    from agentrl.cluster.learner import LearnerGroup
    from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer
    from agentrl.train.config import OptimConfig, PolicyLossConfig
    from agentrl.train.learner import Learner

    torch.set_num_threads(1)
    tokenizer = build_tiny_tokenizer(vocab_size=512)
    model = build_tiny_model(tokenizer, hidden_size=args.hidden, num_layers=args.layers, num_heads=4,
                             intermediate_size=args.hidden * 11 // 4, initializer_range=0.02, seed=0)
    optim = OptimConfig(lr=1e-5, ppo_epochs=1, minibatches=1, micro_batch_tokens=4096)
    loss = PolicyLossConfig(kl_coef=0.1)
    rows = build_rows(model, args.rows)
    params = sum(p.numel() for p in model.parameters())
    tokens = sum(len(r) for r in rows)
    print(f"model {params / 1e6:.1f} M parameters; batch {len(rows)} rows, {tokens} tokens; "
          f"{args.warmup} warm-up + {args.repeats} timed updates each")

    single = Learner(model, optim, loss, pad_id=0)
    driver = Learner(copy.deepcopy(model), optim, loss, pad_id=0)
    one, one_loss = timed(single.update, rows, args.warmup, args.repeats)
    print(f"1 rank  (this process): {one:.3f} s/update  loss {one_loss:.6f}")

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    group = LearnerGroup(ClusterConfig(address="local", learner_ranks=2, learner_cpus=1), driver)
    try:
        two, two_loss = timed(group.update, rows, args.warmup, args.repeats)
    finally:
        group.close()
        ray.shutdown()
    print(f"2 ranks (gloo, FSDP2) : {two:.3f} s/update  loss {two_loss:.6f}")
    print(f"ratio 1 rank / 2 ranks: {one / two:.2f}x  (> 1: the group is faster; on a shared 2-core machine "
          "this measures overhead, not scaling)")


if __name__ == "__main__":
    main()
