"""`transferlab serve` hands its connection settings to uvicorn (uvicorn.run replaced: nothing listens)."""

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from conftest import sentiment_data  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from transferlab.models.classifier import TextClassifier

    texts, labels = sentiment_data(40)
    folder = tmp_path_factory.mktemp("serve-cli") / "m"
    TextClassifier("glove-50d", "dan", epochs=1, max_length=32, seed=0, patience=None).fit(texts, labels).save(folder)
    return folder


def _serve(monkeypatch, *args):
    import uvicorn
    from typer.testing import CliRunner

    from transferlab.cli import app

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: seen.update(kw))
    res = CliRunner().invoke(app, ["serve", *args])
    assert res.exit_code == 0, res.output
    return seen


def test_idle_connections_outlive_a_client_s_keep_alive(monkeypatch, tiny_model):
    # before: uvicorn's default 5 s, the same as httpx's own idle expiry; under load, clients reused connections the
    # server was closing (ReadError in `bench service`)
    seen = _serve(monkeypatch, "--model", str(tiny_model), "--port", "8123")
    assert seen["timeout_keep_alive"] == 75 and seen["port"] == 8123 and seen["host"] == "127.0.0.1"
    assert _serve(monkeypatch, "--model", str(tiny_model), "--keep-alive", "20")["timeout_keep_alive"] == 20
