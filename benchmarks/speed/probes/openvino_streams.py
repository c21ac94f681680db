"""Does OpenVINO's THROUGHPUT mode (2 streams x 1 thread, each batch of 32 split across them) beat its LATENCY mode
(one request on 2 threads) for MiniLM in bf16 at 256 tokens?  8 rounds of 8 batches, the order rotating, eager
PyTorch float32 alongside; ratios are per round (the VM's speed wanders).
Usage: python benchmarks/speed/probes/openvino_streams.py MODEL   (MODEL holds onnx/model.openvino.onnx)"""
import statistics as st
import sys
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from transferlab.models.classifier import TextClassifier

model = Path(sys.argv[1])
torch.set_num_threads(2)
core = ov.Core()
rng = np.random.default_rng(0)
batches = [{"input_ids": rng.integers(1000, 20000, size=(32, 256)).astype(np.int64),
            "attention_mask": np.ones((32, 256), np.int64)} for _ in range(8)]
graph = str(model / "onnx" / "model.openvino.onnx")
lat = core.compile_model(core.read_model(graph), "CPU", {"INFERENCE_PRECISION_HINT": "bf16",
                                                         "INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "LATENCY"})
thr = core.compile_model(core.read_model(graph), "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": 2,
                                                         "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 2})
request, queue = lat.create_infer_request(), ov.AsyncInferQueue(thr, 2)
net = TextClassifier.load(model).module_.cpu().eval()
tb = [{k: torch.from_numpy(v) for k, v in b.items()} for b in batches]


def eager():
    with torch.inference_mode():
        for b in tb:
            net(**b)


def latency():
    for b in batches:
        request.infer(b)


def split():
    for b in batches:
        outs = [None, None]
        queue.set_callback(lambda req, i: outs.__setitem__(i, req.get_output_tensor(0).data.copy()))
        for i, part in enumerate((slice(0, 16), slice(16, 32))):
            queue.start_async({k: v[part] for k, v in b.items()}, i)
        queue.wait_all()
        np.concatenate(outs)


runs = [("eager", eager), ("latency", latency), ("split", split)]
for _, f in runs:
    f()
res = {k: [] for k, _ in runs}
for r in range(8):
    for name, f in runs[r % 3:] + runs[: r % 3]:
        t = time.perf_counter()
        f()
        res[name].append(8 * 32 / (time.perf_counter() - t))
for k, v in res.items():
    print(k, [round(x, 1) for x in v])
ratio = lambda a, b: round(st.median([x / y for x, y in zip(res[a], res[b])]), 3)  # noqa: E731
print("median per-round ratio: split/latency", ratio("split", "latency"), "latency/eager", ratio("latency", "eager"),
      "split/eager", ratio("split", "eager"))
