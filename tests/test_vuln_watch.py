"""`transferlab vuln watch` (vuln/watch.py): each new early warning reaches a real (local) webhook once, across
restarts; a failing source backs off without stopping the others; a failing channel is retried; secrets come only
from the environment or private files; hostile titles are inert in the message."""

import json
import os
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

pytest.importorskip("prometheus_client")

from transferlab.errors import ConfigError  # noqa: E402
from transferlab.serve.vuln_api import VulnConfig, VulnService  # noqa: E402
from transferlab.vuln.cascade import Cascade  # noqa: E402
from transferlab.vuln.mapping import RepositoryMapper  # noqa: E402
from transferlab.vuln.records import Record  # noqa: E402
from transferlab.vuln.sources.base import Batch, Connector, SourceError  # noqa: E402
from transferlab.vuln.store import Store  # noqa: E402
from transferlab.vuln.watch import Watch, WatchConfig, WebhookChannel, parse_interval, slack_text  # noqa: E402

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
VULN = "Heap buffer overflow when parsing a crafted file allows remote code execution"


class Hook(BaseHTTPRequestHandler):
    received: list = []
    fail = False

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Hook.fail:
            self.send_response(500)
        else:
            Hook.received.append(json.loads(body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    Hook.received, Hook.fail = [], False
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


class Feed(Connector):
    """A source the test writes to: every record it was given, once (a checkpoint counts them)."""

    name = "feed"

    def __init__(self, items, broken=False):
        self.items, self.broken = items, broken

    @property
    def key(self):
        return "feed:test"

    def batches(self, checkpoint):
        if self.broken:
            raise SourceError("the server is down")
        done = (checkpoint or {}).get("n", 0)
        yield Batch(records=self.items[done:], checkpoint={"n": len(self.items)})


def record(n, title):
    return Record(source="github", connector="test", project="acme/parser", kind="issue", native_id=f"acme#{n}",
                  url=f"https://github.com/acme/parser/issues/{n}", title=title, body=title, author="eve",
                  created_at=T0, updated_at=T0)


def make_watch(tmp_path, cascade_dir, url, feeds, **cfg):
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    (tmp_path / "requirements.txt").write_text("acme-parser==1.2.0\n")
    (tmp_path / "map.toml").write_text('[PyPI."acme-parser"]\nprojects = ["acme/parser"]\n')
    config = WatchConfig(manifests=[str(tmp_path / "requirements.txt")], interval=60, max_backoff=600,
                         base_url="https://triage.example", sources=[{"source": "feed"} for _ in feeds], **cfg)
    service = VulnService(store, Cascade.load(cascade_dir), VulnConfig(manifests=config.manifests),
                          mapper=RepositoryMapper(tmp_path / "map.toml", cache_file=tmp_path / "c.json", online=False))
    clock = {"t": 1000.0}
    # the i-th source spec reads the i-th feed (specs are equal dicts: matched by identity)
    watch = Watch(config, store, service, [WebhookChannel(url)], clock=lambda: clock["t"],
                  connector_factory=lambda spec: feeds[next(i for i, s in enumerate(config.sources) if s is spec)])
    return watch, store, clock


def test_each_new_warning_is_sent_once_across_restarts(tmp_path, cascade_dir, hook):
    items = [record(1, VULN), record(2, "Add a dark theme to the settings page")]
    feed = Feed(items)
    watch, store, _ = make_watch(tmp_path, cascade_dir, hook, [feed])
    first = watch.run_round()
    assert first.warnings == 1 and first.sent == {"webhook": 0} and Hook.received == []  # the baseline: not sent
    items.append(record(3, "SQL injection in the search parameter lets attackers read the database <!channel>"))
    second = watch.run_round()
    assert second.sent == {"webhook": 1} and len(Hook.received) == 1
    text = Hook.received[0]["text"]
    assert "SQL injection" in text and "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "https://triage.example/items/" in text
    # a restart (a new Watch over the same store) sends nothing again, and is not a first round
    again, _, _ = make_watch(tmp_path, cascade_dir, hook, [Feed(items)])
    assert again.run_round().sent == {"webhook": 0} and len(Hook.received) == 1
    items.append(record(4, "Authentication bypass through a crafted cookie gives admin access"))
    assert again.run_round().sent == {"webhook": 1} and len(Hook.received) == 2


def test_failing_source_backs_off_and_failing_channel_retries(tmp_path, cascade_dir, hook):
    items = []
    good, bad = Feed(items), Feed([], broken=True)
    watch, store, clock = make_watch(tmp_path, cascade_dir, hook, [good, bad], notify_existing=True)
    items.append(record(1, VULN))
    Hook.fail = True
    r = watch.run_round()
    assert r.ingested["feed#0"] == 1 and "server is down" in r.ingested["feed#1"]
    assert r.failed == {"webhook": "webhook at 127.0.0.1 answered 500"} and r.sent == {"webhook": 0}
    clock["t"] += 30  # within the backoff (60 s after the first failure): the broken source waits
    Hook.fail = False
    r = watch.run_round()
    assert r.skipped_sources == ["feed#1"] and r.sent == {"webhook": 1}  # the unsent warning goes now
    clock["t"] += 61
    r = watch.run_round()
    assert "failed" in r.ingested["feed#1"] and watch.retry_at["feed#1"] == clock["t"] + 120  # doubled
    from prometheus_client import generate_latest

    metrics = generate_latest(watch.registry).decode()
    assert 'transferlab_watch_source_failures_total{source="feed#1"} 2.0' in metrics
    assert 'transferlab_watch_notifications_total{channel="webhook"} 1.0' in metrics


def test_config_is_checked_and_secrets_never_come_from_it(tmp_path, monkeypatch):
    path = tmp_path / "watch.toml"
    path.write_text('interval = "15m"\nmanifests = ["requirements.txt"]\n[webhook]\nurl = "https://hooks.x/T/B/C"\n')
    with pytest.raises(ConfigError, match="unknown setting.*url"):
        WatchConfig.load(path)
    path.write_text('interval = "often"\nmanifests = ["r.txt"]\n')
    with pytest.raises(ConfigError, match="not an interval"):
        WatchConfig.load(path)
    path.write_text('interval = "15m"\nmanifests = ["r.txt"]\n[[sources]]\nsource = "mbox"\npath = "lists"\n'
                    '[webhook]\nurl_env = "MY_HOOK"\n')
    cfg = WatchConfig.load(path)
    assert cfg.interval == 900 and cfg.manifests == [str(tmp_path / "r.txt")]
    assert cfg.sources[0]["path"] == [str(tmp_path / "lists")]
    from transferlab.vuln.watch import channels_of

    monkeypatch.delenv("MY_HOOK", raising=False)
    with pytest.raises(ConfigError, match="MY_HOOK is not set"):
        channels_of(cfg)
    monkeypatch.setenv("MY_HOOK", "https://hooks.example/T000/B000/secretpart")
    channel = channels_of(cfg)[0]
    assert channel.host == "hooks.example"
    secret_file = tmp_path / "hook"
    secret_file.write_text("https://hooks.example/x\n")
    os.chmod(secret_file, 0o644)
    cfg.webhook = {"url_file": str(secret_file)}
    with pytest.raises(ConfigError, match="read by others"):
        channels_of(cfg)
    assert parse_interval("2h", "x") == 7200 and parse_interval(90, "x") == 90
    assert slack_text("<https://evil|click> & <@U1>") == "&lt;https://evil|click&gt; &amp; &lt;@U1&gt;"


def test_errors_name_the_webhook_host_never_its_url():
    import requests

    def refuse(*a, **k):
        raise requests.ConnectionError("https://hooks.example/T000/B000/secretpart refused")

    channel = WebhookChannel("https://hooks.example/T000/B000/secretpart", post=refuse)
    with pytest.raises(RuntimeError) as err:
        channel.send({"id": 1, "title": "x", "probability": 0.9, "dependencies": [{"package": "p"}]}, None)
    assert "hooks.example" in str(err.value) and "secretpart" not in str(err.value)
