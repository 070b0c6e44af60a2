"""A few PPO steps of a real-size model on CUDA in bf16: tokens/s, peak memory and loss.

Run by hand where a GPU is lent (it cannot run in CI, and refuses cleanly without CUDA):

    .venv/bin/python scripts/gpu_check.py                       # random-init Qwen2.5-0.5B-sized model
    .venv/bin/python scripts/gpu_check.py --model smollm2-135m-instruct --steps 5
    .venv/bin/python scripts/gpu_check.py --rows 32 --row-tokens 1024 --micro-batch-tokens 16384

``--device cpu --tiny`` runs the same path on CPU in float32 with a tiny Qwen2-shaped model (what
``tests/train/test_gpu_check.py`` does); on CPU the memory figure is the process's peak resident
set size since it started (``ru_maxrss``), labelled ``peak RSS``, not the allocator's peak.

The model is built from a config (no download) unless ``--model`` names a folder, a Hub id or
``smollm2-135m-instruct``. Rows are random token ids with the last half of each row as
"completion" (loss mask 1) and random ±1 advantages; the behaviour log-probs come from a
no-grad forward of the same weights, so step 1 starts at ratio 1 exactly like a real rollout.
Everything goes through :class:`agentrl.train.learner.Learner` — the trainer's own update path.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import time

# Qwen2.5-0.5B's shape (config.json of Qwen/Qwen2.5-0.5B-Instruct).
QWEN25_05B = {
    "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
    "rope_theta": 1000000.0, "tie_word_embeddings": True,
}
# The same architecture (grouped-query attention, tied embeddings), small enough for a CPU check.
TINY_QWEN2 = {
    "vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
    "rope_theta": 1000000.0, "tie_word_embeddings": True,
}


def build(name: str | None, tiny: bool, device):
    import torch

    if name is None:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        shape = TINY_QWEN2 if tiny else QWEN25_05B
        torch.manual_seed(0)
        return Qwen2ForCausalLM(Qwen2Config(**shape)).to(device), shape["vocab_size"]
    if name == "smollm2-135m-instruct":
        from agentrl.policy.models import load_named_model

        model, tokenizer = load_named_model(name)
        return model.to(device), len(tokenizer)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(name)
    return model.to(device), model.config.vocab_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--model", default=None, help="default: random-init Qwen2.5-0.5B-sized model")
    shape.add_argument("--tiny", action="store_true", help="random-init tiny Qwen2-shaped model (a CPU check)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (bf16; refused without CUDA) or cpu (float32)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--row-tokens", type=int, default=1024)
    parser.add_argument("--micro-batch-tokens", type=int, default=8192)
    parser.add_argument("--minibatches", type=int, default=2)
    args = parser.parse_args()

    import numpy as np
    import torch

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible (torch.cuda.is_available() is False); "
              "nothing to check (--device cpu --tiny runs the same path on CPU)", file=sys.stderr)
        return 2
    from agentrl.train.config import OptimConfig, PolicyLossConfig
    from agentrl.train.learner import Learner
    from agentrl.train.rows import TokenRow

    device = torch.device(args.device)
    model, vocab = build(args.model, args.tiny, device)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    what = args.model or f"random-init {'tiny Qwen2-shaped' if args.tiny else 'Qwen2.5-0.5B-sized'}"
    where = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"model: {what}, {params / 1e6:.1f} M parameters, {where}")
    learner = Learner(
        model,
        OptimConfig(lr=1e-6, minibatches=args.minibatches, micro_batch_tokens=args.micro_batch_tokens,
                    precision="bf16" if cuda else "fp32"),
        PolicyLossConfig(kl_coef=0.0),
        pad_id=0,
    )
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    rng = np.random.default_rng(0)
    half = args.row_tokens // 2
    for step in range(1, args.steps + 1):
        ids = rng.integers(0, vocab, size=(args.rows, args.row_tokens))
        with torch.no_grad(), autocast():
            old = []
            for row in ids:  # one row at a time: memory of the behaviour pass stays small
                x = torch.tensor(row[None], device=device)
                logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), -1)
                old.append(logp.gather(-1, x[0, 1:, None])[:, 0].cpu().numpy())
        rows = [
            TokenRow(
                input_ids=row.tolist(),
                mask=[0] * half + [1] * (args.row_tokens - half),
                # old_logp[t] is the behaviour log-prob of token t (position 0 has none).
                old_logp=[0.0] + o.tolist(),
                advantage=[float(rng.choice([-1.0, 1.0]))] * args.row_tokens,
            )
            for row, o in zip(ids, old)
        ]
        synchronize()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        stats = learner.update(rows)
        synchronize()
        seconds = time.perf_counter() - start
        tokens = args.rows * args.row_tokens
        if cuda:
            memory = f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
        else:  # Linux reports ru_maxrss in KiB
            memory = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (process, since start)"
        print(
            f"step {step}: {tokens / seconds:,.0f} tokens/s ({seconds:.2f} s for {tokens} tokens), {memory}, "
            f"loss {stats['loss']:+.4f}, approx_kl {stats['approx_kl']:.2e}, grad_norm {stats['grad_norm']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
