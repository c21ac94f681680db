"""OpenVINO with NNCF post-training int8 quantisation (SmoothQuant, calibrated on random token ids) against
OpenVINO float32 and bf16 on the bare MiniLM network: is int8 on AMX the way past bf16? (2026-12-03: no; see README)."""
import time, numpy as np, torch, openvino as ov, nncf
from transformers import AutoModelForSequenceClassification
from transferlab.encoders.zoo import resolve
from transferlab.runtime import onnx as o
from pathlib import Path
torch.set_num_threads(2)
p = resolve("minilm")
m = AutoModelForSequenceClassification.from_pretrained(p.location, num_labels=2, attn_implementation="eager").eval()
rng = np.random.default_rng(0)
ids = rng.integers(1000, 20000, size=(32, 256)).astype(np.int64); mask = np.ones_like(ids); mask[16:, 200:] = 0
tf = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
class W(torch.nn.Module):
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, input_ids, attention_mask): return s.m(input_ids=input_ids, attention_mask=attention_mask).logits
o._export_graph(W(m), tf, Path("/tmp/plain.onnx"), o.OPSET, "logits")
core = ov.Core()
model = core.read_model("/tmp/plain.onnx")
calib = [{"input_ids": rng.integers(1000, 20000, size=(8, 256)).astype(np.int64), "attention_mask": np.ones((8,256),np.int64)} for _ in range(10)]
t=time.time()
q = nncf.quantize(model, nncf.Dataset(calib), model_type=nncf.ModelType.TRANSFORMER, subset_size=80)
print("quantize s", time.time()-t)
cfg = lambda prec: {"INFERENCE_PRECISION_HINT": prec, "INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"}
nets = {"f32": core.compile_model(core.read_model("/tmp/plain.onnx"), "CPU", cfg("f32")),
        "bf16": core.compile_model(core.read_model("/tmp/plain.onnx"), "CPU", cfg("bf16")),
        "int8+bf16": core.compile_model(q, "CPU", cfg("bf16")),
        "int8+f32": core.compile_model(q, "CPU", cfg("f32"))}
reqs = {k: v.create_infer_request() for k, v in nets.items()}
feeds = {"input_ids": ids, "attention_mask": mask}
ref = reqs["f32"].infer(feeds)[0].copy()
tot = {k: 0.0 for k in nets}
for rep in range(4):
    for k, r in reqs.items():
        t = time.perf_counter(); out = r.infer(feeds)[0].copy(); tot[k] += time.perf_counter() - t
for k in nets: print(k, round(4*32/tot[k], 1), "docs/s", float(np.abs(reqs[k].infer(feeds)[0] - ref).max()))
