"""`transferlab serve` (serve/): the classify endpoint against the model it serves, micro-batching that merges
concurrent requests, every limit answered with its status in the one error shape, probes and metrics, security
headers."""

import asyncio
import json
import threading

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from fastapi.testclient import TestClient  # noqa: E402

from transferlab.serve.app import Settings, create_app  # noqa: E402
from transferlab.serve.batching import MicroBatcher, QueueFull  # noqa: E402

from conftest import sentiment_data  # noqa: E402


@pytest.fixture(scope="module")
def model():
    from transferlab.models.classifier import TextClassifier

    texts, labels = sentiment_data(40)
    return TextClassifier("glove-50d", "dan", epochs=3, max_length=32, seed=0, patience=None).fit(texts, labels)


def client(model, **kw):
    return TestClient(create_app(Settings(**kw), models={"sentiment": model}), raise_server_exceptions=False)


def shape(res):
    body = res.json()
    assert set(body) == {"error"} and set(body["error"]) == {"what", "where", "hint"}, body
    return body["error"]


def test_classify_answers_what_the_model_predicts(model):
    texts = ["a wonderful moving film", "awful acting and a dull story", "i loved it , brilliant"]
    with client(model) as c:
        res = c.post("/v1/classify", json={"texts": texts})
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["model"] == "sentiment" and [r["label"] for r in body["results"]] == model.predict(texts)
        proba = model.predict_proba(texts)
        for r, row in zip(body["results"], proba):
            assert r["scores"] == pytest.approx(dict(zip(model.labels_, row.tolist())), abs=1e-5)
        assert c.post("/v1/classify", json={"texts": texts, "model": "sentiment"}).json() == body
        assert c.get("/v1/models").json()["models"][0]["labels"] == list(model.labels_)
        # security headers on every response
        res = c.get("/healthz")
        assert "script-src 'self'" in res.headers["content-security-policy"]
        assert "unsafe-inline" not in res.headers["content-security-policy"]
        assert res.headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in c.options("/v1/classify", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}).headers
        assert c.get("/docs").status_code == 200 and "/v1/classify" in c.get("/openapi.json").json()["paths"]


def test_every_limit_has_its_status_and_the_one_error_shape(model):
    with client(model, max_texts=3, max_text_chars=50, max_body_bytes=2000, rate=0) as c:
        err = shape(r := c.post("/v1/classify", json={"texts": ["a"] * 4}))
        assert r.status_code == 413 and err["where"] == "texts"
        err = shape(r := c.post("/v1/classify", json={"texts": ["fine", "x" * 51]}))
        assert r.status_code == 413 and err["where"] == "texts[1]"
        err = shape(r := c.post("/v1/classify", content=json.dumps({"texts": ["y" * 3000]}),
                                headers={"content-type": "application/json"}))
        assert r.status_code == 413 and err["where"] == "body"
        # a streamed body without Content-Length is cut at the limit too

        def stream():
            yield b'{"texts": ["'
            for _ in range(100):
                yield b"z" * 100
            yield b'"]}'
        err = shape(r := c.post("/v1/classify", content=stream(), headers={"content-type": "application/json"}))
        assert r.status_code == 413
        err = shape(r := c.post("/v1/classify", json={"texts": []}))
        assert r.status_code == 422 and err["where"] == "texts"
        err = shape(r := c.post("/v1/classify", json={"texts": [3]}))
        assert r.status_code == 422 and err["where"].startswith("texts")
        err = shape(r := c.post("/v1/classify", content=b"{not json", headers={"content-type": "application/json"}))
        assert r.status_code == 422
        err = shape(r := c.post("/v1/classify", json={"texts": ["ok"], "model": "nope"}))
        assert r.status_code == 404 and err["where"] == "model" and "sentiment" in err["hint"]
        err = shape(r := c.get("/v1/nothing"))
        assert r.status_code == 404
        metrics = c.get("/metrics").text
        assert 'transferlab_refused_total{reason="texts"} 1.0' in metrics
        assert 'transferlab_refused_total{reason="body"} 2.0' in metrics


def test_rate_limit_per_client_says_when_to_retry(model):
    with client(model, rate=1.0, burst=2) as c:
        ok = [c.post("/v1/classify", json={"texts": ["good"]}).status_code for _ in range(2)]
        res = c.post("/v1/classify", json={"texts": ["good"]})
        assert ok == [200, 200] and res.status_code == 429 and int(res.headers["retry-after"]) >= 1
        assert shape(res)["where"] == "client"


def test_probes_and_prometheus_metrics(model):
    with client(model) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready", "models": ["sentiment"]}
        c.post("/v1/classify", json={"texts": ["good", "bad"]})
        text = c.get("/metrics").text
        assert 'transferlab_requests_total{method="POST",route="/v1/classify",status="200"} 1.0' in text
        assert 'transferlab_texts_scored_total{model="sentiment"} 2.0' in text
        assert 'transferlab_queue_depth{model="sentiment"} 0.0' in text
        assert "transferlab_request_seconds_bucket" in text


def test_a_crash_is_a_500_in_the_error_shape_without_the_details():
    class Broken:
        labels_ = ["a", "b"]

        def predict_proba(self, texts):
            raise RuntimeError("secret path /etc/model")

    with client(Broken()) as c:
        res = c.post("/v1/classify", json={"texts": ["x"]})
        assert res.status_code == 500 and "secret" not in res.text and shape(res)["what"] == "internal error"


# ---------------------------------------------------------------------------------------------- batching
def test_concurrent_requests_share_forward_passes_and_keep_their_order():
    calls = []

    def fn(texts):
        calls.append(list(texts))
        return [t.upper() for t in texts]

    async def main():
        b = MicroBatcher(fn, max_batch=16, max_wait_ms=50)
        results = await asyncio.gather(*(b.submit([f"r{i}a", f"r{i}b"]) for i in range(20)))
        await b.stop()
        return results, b.stats

    results, stats = asyncio.run(main())
    assert results == [[f"R{i}A", f"R{i}B"] for i in range(20)]
    assert stats.requests == 20 and stats.texts == 40
    assert len(calls) < 20 and all(len(c) <= 16 for c in calls)  # merged, never over the batch size


def test_full_queue_refuses_at_once_and_errors_reach_every_request_of_the_batch():
    gate = threading.Event()

    def slow(texts):
        gate.wait(5)
        return texts

    async def main():
        b = MicroBatcher(slow, max_batch=4, max_wait_ms=0, max_queue=6)
        first = asyncio.ensure_future(b.submit(["a", "b", "c", "d"]))
        await asyncio.sleep(0.05)  # the first batch is running; 4 more texts may wait, not 7
        waiting = asyncio.ensure_future(b.submit(["e", "f", "g", "h"]))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await b.submit(["i", "j", "k"])
        gate.set()
        out = await asyncio.gather(first, waiting)
        await b.stop()
        return out

    assert asyncio.run(main()) == [["a", "b", "c", "d"], ["e", "f", "g", "h"]]

    def broken(texts):
        raise ValueError("bad batch")

    async def failing():
        b = MicroBatcher(broken, max_batch=8, max_wait_ms=30)
        out = await asyncio.gather(b.submit(["a"]), b.submit(["b"]), return_exceptions=True)
        await b.stop()
        return out

    assert all(isinstance(e, ValueError) for e in asyncio.run(failing()))


def test_full_queue_is_a_503_with_retry_after(model):
    import time

    class Slow:
        labels_ = model.labels_

        def predict_proba(self, texts):
            time.sleep(0.3)
            return model.predict_proba(texts)

        def decode(self, proba):
            return model.decode(proba)

    app = create_app(Settings(max_queue=2, max_batch=2, max_wait_ms=0, rate=0), models={"m": Slow()})
    with TestClient(app, raise_server_exceptions=False) as c:
        statuses = []

        def call():
            statuses.append(c.post("/v1/classify", json={"texts": ["good", "bad"]}))

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    codes = sorted(r.status_code for r in statuses)
    assert 200 in codes and 503 in codes, codes
    busy = next(r for r in statuses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and shape(busy)["where"] == "queue"


def test_cli_serve_needs_a_model_and_names_missing_packages(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app
    from transferlab.serve import cli as serve_cli

    res = CliRunner().invoke(app, ["serve"])
    assert res.exit_code == 2 and "nothing to serve" in res.output
    res = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such model folder" in res.output
    monkeypatch.setattr(serve_cli, "missing_extra", lambda: ["fastapi"])
    res = CliRunner().invoke(app, ["serve", "--model", str(tmp_path)])
    assert res.exit_code == 2 and "pip install 'transferlab[serve]'" in res.output


def test_tokens_authenticate_and_auth_reads_closes_the_api(model, tmp_path, monkeypatch):
    pytest.importorskip("sqlalchemy")
    from transferlab.serve import accounts as acc
    from transferlab.serve.accounts import Accounts
    from transferlab.vuln.store import Store

    monkeypatch.setitem(acc.SCRYPT, "n", 2 ** 4)
    accounts = Accounts(Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    accounts.add_user("ana", "reviewer", None)
    _, token = accounts.create_token("ana")
    body = {"texts": ["good"]}
    for auth_reads in (False, True):
        app = create_app(Settings(auth_reads=auth_reads, rate=0), models={"m": model}, accounts=accounts)
        with TestClient(app, raise_server_exceptions=False) as c:
            anonymous = c.post("/v1/classify", json=body)
            assert anonymous.status_code == (401 if auth_reads else 200)
            wrong = c.post("/v1/classify", json=body, headers={"Authorization": "Bearer tlk_abc_def"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
            assert shape(wrong)["where"] == "Authorization" and "tlk_abc_def" not in wrong.text
            assert c.post("/v1/classify", json=body, headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert c.post("/v1/classify", json=body, headers={"Authorization": f"Basic {token}"}).status_code == 401
            assert c.get("/healthz").status_code == 200  # probes stay open for the orchestrator
    # each account has its own budget; guessing tokens spends the address's
    app = create_app(Settings(rate=0.01, burst=2), models={"m": model}, accounts=accounts)
    with TestClient(app, raise_server_exceptions=False) as c:
        codes = [c.post("/v1/classify", json=body).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert c.post("/v1/classify", json=body, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.post("/v1/classify", json=body, headers={"Authorization": "Bearer tlk_abc_guess"}).status_code == 429
    with pytest.raises(Exception, match="--auth-reads needs accounts"):
        create_app(Settings(auth_reads=True), models={"m": model})
