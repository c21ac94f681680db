"""Property-based fuzzing of the whole HTTP API against its own OpenAPI schema (schemathesis, through a real
uvicorn server): whatever a client sends that the schema allows, or nearly allows, the server never answers 5xx."""

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from conftest import sentiment_data  # noqa: E402
from test_serve_browser import serving  # noqa: E402
from test_serve_vuln import make_app  # noqa: E402
from transferlab.serve import accounts as acc  # noqa: E402


@pytest.fixture(scope="module")
def api(tmp_path_factory, cascade_dir):
    from transferlab.models.classifier import TextClassifier

    acc.SCRYPT["n"], saved = 2 ** 4, acc.SCRYPT["n"]
    texts, labels = sentiment_data(40)
    model = TextClassifier("glove-50d", "dan", epochs=2, max_length=32, seed=0, patience=None).fit(texts, labels)
    app, token, _ = make_app(tmp_path_factory.mktemp("fuzz"), cascade_dir, models={"sentiment": model})
    with serving(app) as base:
        yield schemathesis.openapi.from_url(f"{base}/openapi.json"), token
    acc.SCRYPT["n"] = saved


@pytest.fixture
def api_schema(api):
    return api[0]


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_server_fail(case, api):
    # a reviewer's token: writes are exercised too (an admin's would start retraining on every example)
    case.call_and_validate(headers={"Authorization": f"Bearer {api[1]}"}, checks=[not_a_server_error])
