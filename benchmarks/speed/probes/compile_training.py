import torch, time, sys
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
from transformers import AutoModelForSequenceClassification
from transferlab.encoders.zoo import resolve
torch.manual_seed(0)
ids = torch.randint(1000, 20000, (16, 128)); mask = torch.ones_like(ids); y = torch.randint(0, 2, (16,))
for mode in ("eager", "compile"):
    m = AutoModelForSequenceClassification.from_pretrained(resolve("minilm").location, num_labels=2)
    m.train()
    f = torch.compile(m) if mode == "compile" else m
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, fused=True)
    def step():
        out = f(input_ids=ids, attention_mask=mask, labels=y)
        out.loss.backward(); opt.step(); opt.zero_grad()
    t = time.perf_counter(); step(); first = time.perf_counter() - t
    step()
    t = time.perf_counter()
    for _ in range(4): step()
    print(mode, f"first {first:.1f}s, {64/(time.perf_counter()-t):.2f} samples/s", flush=True)
