"""``transferlab bench service``: the HTTP service under load on loopback (issue 17).

A real server (``transferlab serve`` in a subprocess, uvicorn, one worker) with a classifier and the early warning of
the demo project (its store built by ``vuln demo`` from the fixtures), then ``clients`` concurrent clients for
``seconds`` each, bounded, in rows:

* ``classify``: one review per request to ``POST /v1/classify``, with the server's micro-batching on (the default
  ``--max-batch 64 --max-wait-ms 5``);
* ``classify-batch-of-one``: the same load with micro-batching off (``--max-batch 1 --max-wait-ms 0``), the
  baseline of the gain;
* ``items``: ``GET /v1/vuln/items`` (a page of 50).

Per row: requests/s, p50/p99 latency, errors (any status other than 200, or a failed connection), texts per forward
pass as the server's /metrics counted them.  The load generator (asyncio + httpx, one process) shares the cores
with the server, as it would on one small machine; hardware and versions are recorded.  Results in
``results.json`` and ``results.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROWS = ("classify", "classify-batch-of-one", "items")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], port: int, log: Path, timeout: float = 600) -> subprocess.Popen:
    import httpx

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "transferlab", "serve", *args, "--port", str(port), "--rate", "0"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the server was not ready within {timeout:.0f} s; see {log}")


async def _load(url: str, make_request: Callable, clients: int, seconds: float) -> dict:
    import httpx

    latencies, errors, statuses, first_errors = [], 0, {}, []
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def worker(i: int):
            nonlocal errors
            n = 0
            while time.perf_counter() < stop_at:
                method, path, body = make_request(i, n)
                n += 1
                t = time.perf_counter()
                try:
                    res = await client.request(method, path, json=body)
                    code = res.status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                    if len(first_errors) < 10:  # what and when, so a failure can be understood, not just counted
                        first_errors.append({"after_s": round(t - started, 2), "client": i, "error": code,
                                             "message": str(exc)[:200]})
                latencies.append(time.perf_counter() - t)
                statuses[str(code)] = statuses.get(str(code), 0) + 1
                if code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def q(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else None

    return {"requests": len(latencies), "seconds": round(elapsed, 2),
            "requests_per_second": round(len(latencies) / elapsed, 1), "p50_ms": round(q(0.50), 1),
            "p99_ms": round(q(0.99), 1), "errors": errors, "statuses": statuses, "first_errors": first_errors}


def _texts_per_pass(url: str) -> float | None:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = re.search(r'^transferlab_batch_texts_sum\{[^}]*\} ([0-9.e+]+)', text, re.M)
    count = re.search(r'^transferlab_batch_texts_count\{[^}]*\} ([0-9.e+]+)', text, re.M)
    return round(float(total.group(1)) / float(count.group(1)), 2) if total and count and float(count.group(1)) \
        else None


def _runtime(url: str) -> str | None:
    """The runtime the server chose for the model (``--runtime auto`` takes the fastest checked export)."""
    import httpx

    models = httpx.get(f"{url}/v1/models", timeout=10).json().get("models") or [{}]
    return models[0].get("runtime")


def run(out: str | Path, *, model: str | Path, clients: int = 50, seconds: float = 60.0, rows=ROWS,
        data: str | None = None, announce: Callable[[str], None] = print) -> dict:
    from ..data.loading import DataSpec, load_parts, subsample
    from ..models.base import environment
    from ..vuln.demo import PROJECT, run_demo
    from .speed import DATA

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    spec = DataSpec(path=data or DATA["path"], text_col=DATA["text_col"], label_col=DATA["label_col"],
                    split=DATA["split"])
    parts, _ = load_parts(spec, seed=13)
    texts = list(subsample(parts["test"], 500, seed=13).texts)
    cascade = Path(__file__).parents[1] / "vuln" / "cascade_default"
    demo = out / "demo"
    announce("building the demo store (vuln demo on the fixtures)")
    run_demo(demo, cascade=cascade, log=lambda m: None, progress=False)
    common = ["--model", f"m={model}", "--db", f"sqlite:///{demo / 'vuln.db'}", "--manifest",
              str(PROJECT / "requirements.txt"), "--mapping", str(PROJECT / "mapping.toml"), "--osv",
              str(PROJECT / "osv"), "--cascade", str(cascade)]
    requests = {
        "classify": lambda i, n: ("POST", "/v1/classify", {"texts": [texts[(i * 7 + n) % len(texts)]]}),
        "items": lambda i, n: ("GET", "/v1/vuln/items?limit=50", None),
    }
    results = []
    for name in rows:
        extra = ["--max-batch", "1", "--max-wait-ms", "0"] if name == "classify-batch-of-one" else []
        port = _free_port()
        announce(f"{name}: starting the server")
        proc = _start(common + extra, port, out / f"server-{name}.log")
        try:
            url = f"http://127.0.0.1:{port}"
            make = requests["items" if name == "items" else "classify"]
            announce(f"{name}: {clients} clients for {seconds:.0f} s")
            row = {"name": name, **asyncio.run(_load(url, make, clients, seconds))}
            if name != "items":
                row["texts_per_forward_pass"] = _texts_per_pass(url)
                row["runtime"] = _runtime(url)
        finally:
            proc.terminate()
            proc.wait(30)
        results.append(row)
        announce(f"    {row['requests_per_second']} req/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
                 f"{row['errors']} errors")
    by = {r["name"]: r for r in results}
    gain = (round(by["classify"]["requests_per_second"] / by["classify-batch-of-one"]["requests_per_second"], 2)
            if {"classify", "classify-batch-of-one"} <= set(by) else None)
    env = environment()
    res = {"benchmark": "service", "model": str(model), "clients": clients, "seconds": seconds, "rows": results,
           "micro_batching_gain": gain, "hardware": env["hardware"], "versions": env["versions"],
           "command": f"transferlab bench service --out {out} --model {model} --clients {clients} "
                      f"--seconds {seconds:g}"}
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    write_markdown(res, out)
    return res


def write_markdown(res: dict, out: Path) -> None:
    from .report import hardware_line

    lines = [f"# The HTTP service under load ({res['clients']} concurrent clients, {res['seconds']:g} s per row, "
             "loopback)", "", f"Model `{res['model']}`; early-warning items of the demo project.", "",
             "| row | requests/s | p50 ms | p99 ms | errors | texts per forward pass | model runtime |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['name']} | {r['requests_per_second']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | "
                     f"{r.get('texts_per_forward_pass', '')} | {r.get('runtime') or ''} |")
    if res["micro_batching_gain"] is not None:
        lines += ["", f"Micro-batching gain (classify against batch-of-one, same run): "
                      f"{res['micro_batching_gain']}x."]
    lines += ["", f"Hardware: {hardware_line(res['hardware'])}.", f"Command: `{res['command']}`."]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
