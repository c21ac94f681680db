import sys
import time, numpy as np, torch, copy
torch.set_num_threads(1)
from transferlab.models.classifier import TextClassifier
clf = TextClassifier.load(sys.argv[1])
m = clf.module_.cpu().eval()
rng = np.random.default_rng(0)
ids = rng.integers(1000, 20000, size=(16, 256)).astype(np.int64); mask = np.ones_like(ids); mask[8:, 200:] = 0
tf = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
tf2 = {k: v[:, :200] for k, v in tf.items()}
def bench(name, f, ref=None):
    with torch.inference_mode():
        t0 = time.perf_counter(); f(); print("first call", round(time.perf_counter()-t0,1), "s")
        f()
        t = time.perf_counter()
        for _ in range(3): r = f()
        print(name, f"{48/(time.perf_counter()-t):.1f} docs/s", None if ref is None else float((r.float()-ref).abs().max()), flush=True)
    return r
with torch.inference_mode(): ref = m(**tf)
mb = copy.deepcopy(m).to(torch.bfloat16)
mc = torch.compile(mb, dynamic=True)
bench("pure bf16 + compile dynamic", lambda: mc(**tf), ref)
with torch.inference_mode():
    t0 = time.perf_counter(); mc(**tf2); print("other length first call", round(time.perf_counter()-t0,1))
