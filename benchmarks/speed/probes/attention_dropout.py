"""Probe (2026-12-03): what attention-probability dropout costs a CPU training step.
From the repository root: python benchmarks/speed/probes/attention_dropout.py [ROUNDS]

MiniLM (BERT) with a classification head, batch 16, a padding mask (half the rows 80% long), AdamW; training steps
at 128 / 256 / 512 tokens, float32 and bf16 autocast, with the checkpoint's attention dropout (0.1) and with none.
Rounds rotate over the variants so a noisy neighbour hits all of them alike; the median step time is reported.
Found while profiling MiniLM fine-tuning on FARSEC (benchmarks/farsec/NOTES.md): with dropout PyTorch's CPU
scaled_dot_product_attention leaves its fused kernel for the reference path, which materialises the 16 x 12 x L x L
probabilities and draws a Bernoulli mask over them in every layer, forward, and again in the backward pass."""
import statistics
import sys
import time

import torch
from transformers import AutoModelForSequenceClassification

from transferlab.encoders.zoo import resolve

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
torch.manual_seed(0)
loc = resolve("minilm").location
models = {p: AutoModelForSequenceClassification.from_pretrained(loc, num_labels=2, dtype=torch.float32,
                                                                attention_probs_dropout_prob=p).train()
          for p in (0.1, 0.0)}
models[0.0].load_state_dict(models[0.1].state_dict())
opts = {p: torch.optim.AdamW(m.parameters(), lr=1e-5) for p, m in models.items()}
times: dict = {}
for r in range(ROUNDS):
    for length in (128, 256, 512):
        ids = torch.randint(1000, 20000, (16, length))
        mask = torch.ones_like(ids)
        mask[8:, int(0.8 * length):] = 0
        y = torch.randint(0, 2, (16,))
        for precision in ("fp32", "bf16"):
            for p, m in models.items():
                def step():
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                        loss = m(input_ids=ids, attention_mask=mask, labels=y).loss
                    loss.backward()
                    opts[p].step()
                    opts[p].zero_grad()
                step()  # warm-up for this shape
                t = time.perf_counter()
                step()
                step()
                times.setdefault((length, precision, p), []).append((time.perf_counter() - t) / 2)
print("| tokens | precision | step s, dropout 0.1 | step s, no attention dropout | ratio |")
print("|---|---|---|---|---|")
for length in (128, 256, 512):
    for precision in ("fp32", "bf16"):
        a = statistics.median(times[(length, precision, 0.1)])
        b = statistics.median(times[(length, precision, 0.0)])
        print(f"| {length} | {precision} | {a:.2f} | {b:.2f} | {a / b:.2f}x |", flush=True)
