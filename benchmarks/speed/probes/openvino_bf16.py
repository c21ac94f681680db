import sys
import time, numpy as np, torch, sys
import openvino as ov
threads = 2
torch.set_num_threads(threads)
from transferlab.models.classifier import TextClassifier
from transferlab.runtime import onnx as o
clf = TextClassifier.load(sys.argv[1])
m = clf.module_.cpu().eval()
rng = np.random.default_rng(0)
ids = rng.integers(1000, 20000, size=(32, 256)).astype(np.int64); mask = np.ones_like(ids); mask[16:, 200:] = 0
tf = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
o._export_graph(m, tf, __import__("pathlib").Path("/tmp/plain.onnx"), o.OPSET, "logits")
core = ov.Core()
def bench(name, f, ref=None, n=3):
    f(); t = time.perf_counter()
    for _ in range(n): r = f()
    print(name, f"{n*32/(time.perf_counter()-t):.1f} docs/s", None if ref is None else float(np.abs(np.asarray(r, dtype=np.float32) - ref).max()), flush=True)
    return r
with torch.inference_mode():
    ref = bench("torch fp32", lambda: m(**tf).numpy())
    import copy; mb = copy.deepcopy(m).to(torch.bfloat16)
    bench("torch bf16", lambda: mb(**tf).float().numpy(), ref)
for prec in ("f32", "bf16"):
    model = core.read_model("/tmp/plain.onnx")
    c = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": prec, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    req = c.create_infer_request()
    feeds = {"input_ids": ids, "attention_mask": mask}
    bench(f"openvino onnx {prec}", lambda: req.infer(feeds)[c.output(0)].copy(), ref)
ovm = ov.convert_model(m, example_input=tf)
for prec in ("bf16",):
    c = core.compile_model(ovm, "CPU", {"INFERENCE_PRECISION_HINT": prec, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    req = c.create_infer_request()
    bench(f"openvino torch-converted {prec}", lambda: req.infer({"input_ids": ids, "attention_mask": mask})[c.output(0)].copy(), ref)
