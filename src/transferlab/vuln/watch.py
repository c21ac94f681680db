"""``transferlab vuln watch --config watch.toml``: the loop a team leaves running.

Every ``interval`` it ingests the configured sources (the connectors of `vuln ingest`, each resuming from its
checkpoint), scans the manifests over the store (as `vuln scan`; only records this cascade has not scored are
scored), and tells each notification channel (a Slack-compatible webhook, e-mail over SMTP) about every **new**
early warning once, with a link to its page on the service.

* Once: what a channel was told is remembered in the store (``notifications``: record and channel, unique), written
  right after the send succeeds, so a restart sends nothing twice (a crash between a send and its row is the one
  window in which a warning can be sent again; a warning is never silently dropped).  On a channel's first round the
  warnings already there are taken as its baseline and not sent (``notify_existing = true`` sends them).
* A failing source does not stop the others: it is retried after a backoff that doubles with each failure in a row
  (capped at ``max_backoff``); a failing channel is retried on the next round with everything still unsent.
* Health: with ``metrics_port`` the loop serves Prometheus metrics (rounds, source failures, notifications, the
  time of the last good round) on 127.0.0.1.
* Secrets (the webhook URL, the SMTP password) come only from environment variables or files of mode 600 named in
  the config, never from the config itself, and never appear in a log line or an error (the webhook is named by
  its host).  Text from strangers is made inert for each channel (control characters and line breaks removed;
  for Slack, ``& < >`` escaped so a title cannot mention @channel or forge a link).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from transferlab.errors import ConfigError

from .inert import one_line, safe_url

log = logging.getLogger("transferlab.watch")

SOURCE_KEYS = {"source", "path", "url", "repo", "repos", "project", "since", "allow_insecure_http",
               "max_record_bytes"}
TOP_KEYS = {"interval", "max_backoff", "db", "cascade", "manifests", "mapping", "osv", "online", "runtime",
            "base_url", "metrics_port", "notify_existing", "sources", "webhook", "email"}
WEBHOOK_KEYS = {"url_env", "url_file", "timeout"}
EMAIL_KEYS = {"smtp_host", "smtp_port", "starttls", "sender", "to", "user", "password_env", "password_file",
              "timeout"}


def parse_interval(value, where: str) -> float:
    """Seconds from ``90``, ``"90s"``, ``"15m"``, ``"2h"`` or ``"1d"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"not an interval: {value!r}", where=where, hint='e.g. "15m", "1h" or 900 (seconds)')
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _secret(env: str | None, file: str | None, where: str) -> str:
    from ..serve.accounts import read_secret_file

    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"the environment variable {env} is not set", where=where)
        return value
    if file:
        return read_secret_file(file)
    raise ConfigError("no secret given", where=where, hint="url_env / password_env (an environment variable) or "
                      "url_file / password_file (a file of mode 600)")


def _unknown(table: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"unknown setting(s) {', '.join(extra)}", where=where,
                          hint=f"allowed: {', '.join(sorted(allowed))}")


@dataclass
class WatchConfig:
    interval: float = 900.0
    max_backoff: float = 6 * 3600.0
    db: str | None = None
    cascade: str | None = None
    manifests: list[str] = field(default_factory=list)
    mapping: str | None = None
    osv: str | None = None
    online: bool = False
    runtime: str = "auto"
    base_url: str | None = None
    metrics_port: int | None = None
    notify_existing: bool = False
    sources: list[dict] = field(default_factory=list)
    webhook: dict | None = None
    email: dict | None = None

    @classmethod
    def load(cls, path: str | Path) -> "WatchConfig":
        from transferlab.errors import read_toml

        path = Path(path)
        doc = read_toml(path, "watch config")
        _unknown(doc, TOP_KEYS, str(path))
        base = path.parent

        def rel(value):  # paths in the file are relative to the file
            return str((base / value).resolve()) if value and not Path(value).is_absolute() else value

        sources = doc.get("sources") or []
        for i, s in enumerate(sources):
            _unknown(s, SOURCE_KEYS, f"{path}: sources[{i}]")
            if "source" not in s:
                raise ConfigError("a source needs `source` (gharchive, github, bugzilla, jira, mbox, ...)",
                                  where=f"{path}: sources[{i}]")
            if "path" in s:
                s["path"] = [rel(p) for p in ([s["path"]] if isinstance(s["path"], str) else s["path"])]
        for key, allowed in (("webhook", WEBHOOK_KEYS), ("email", EMAIL_KEYS)):
            if key in doc:
                _unknown(doc[key], allowed, f"{path}: [{key}]")
        if "url" in (doc.get("webhook") or {}):
            raise ConfigError("the webhook URL is a secret", where=f"{path}: [webhook]")
        manifests = [rel(m) for m in doc.get("manifests", [])]
        if not manifests:
            raise ConfigError("no manifests to watch", where=str(path), hint='manifests = ["requirements.txt"]')
        base_url = doc.get("base_url")
        if base_url is not None and safe_url(base_url) is None:
            raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}", where=str(path))
        return cls(interval=parse_interval(doc.get("interval", 900), f"{path}: interval"),
                   max_backoff=parse_interval(doc.get("max_backoff", 6 * 3600), f"{path}: max_backoff"),
                   db=doc.get("db"), cascade=rel(doc.get("cascade")), manifests=manifests,
                   mapping=rel(doc.get("mapping")), osv=rel(doc.get("osv")), online=bool(doc.get("online", False)),
                   runtime=doc.get("runtime", "auto"), base_url=base_url, metrics_port=doc.get("metrics_port"),
                   notify_existing=bool(doc.get("notify_existing", False)), sources=sources,
                   webhook=doc.get("webhook"), email=doc.get("email"))


# ------------------------------------------------------------------------------------------------ channels
def _line(item: dict, base_url: str | None) -> tuple[str, str]:
    packages = ", ".join(sorted({d["package"] for d in item["dependencies"]}))
    link = f"{base_url.rstrip('/')}/items/{item['id']}" if base_url else (item.get("url") or "")
    title = one_line(item["title"])[:300]
    return f"Early warning for {one_line(packages)}: {title} (probability {item['probability']:.2f})", link


def slack_text(text: str) -> str:
    """Slack's mrkdwn escaping: ``& < >`` only, which is what keeps ``<!channel>`` and ``<url|label>`` literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class WebhookChannel:
    """A Slack-compatible incoming webhook: ``{"text": ...}`` POSTed as JSON."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0, post: Callable | None = None):
        if safe_url(url) is None:
            raise ConfigError("the webhook URL is not an http(s) URL", where="[webhook]")
        self.url, self.timeout = url, timeout
        from urllib.parse import urlsplit

        self.host = urlsplit(url).hostname  # what errors and logs name, never the URL (it is the secret)
        self._post = post

    def send(self, item: dict, base_url: str | None) -> None:
        import requests

        text, link = _line(item, base_url)
        body = {"text": slack_text(text) + (f"\n<{link}|open the item>" if safe_url(link) else "")}
        try:
            res = (self._post or requests.post)(self.url, json=body, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise RuntimeError(f"webhook at {self.host}: {type(exc).__name__}") from None
        if not 200 <= res.status_code < 300:
            raise RuntimeError(f"webhook at {self.host} answered {res.status_code}")


class EmailChannel:
    """One plain-text mail per warning over SMTP (STARTTLS unless ``starttls = false``)."""

    name = "email"

    def __init__(self, cfg: dict, password: str | None, smtp_factory: Callable | None = None):
        for key in ("smtp_host", "sender", "to"):
            if not cfg.get(key):
                raise ConfigError(f"e-mail needs `{key}`", where="[email]")
        self.cfg, self.password = cfg, password
        self._smtp = smtp_factory

    def send(self, item: dict, base_url: str | None) -> None:
        import smtplib
        from email.message import EmailMessage

        text, link = _line(item, base_url)
        msg = EmailMessage()
        msg["Subject"] = text[:200]  # one line: one_line() removed every break, so no header can be injected
        msg["From"] = self.cfg["sender"]
        to = self.cfg["to"]
        msg["To"] = ", ".join(to) if isinstance(to, list) else to
        msg.set_content(f"{text}\n\n{link}\n\nEvidence:\n" + "\n".join(
            f"- {one_line(s)[:400]}" for s in item.get("evidence", [])[:3]) + "\n")
        smtp = (self._smtp or smtplib.SMTP)(self.cfg["smtp_host"], int(self.cfg.get("smtp_port", 587)),
                                            timeout=float(self.cfg.get("timeout", 20)))
        with smtp:
            if self.cfg.get("starttls", True):
                smtp.starttls()
            if self.cfg.get("user"):
                smtp.login(self.cfg["user"], self.password or "")
            smtp.send_message(msg)


def channels_of(cfg: WatchConfig) -> list:
    out = []
    if cfg.webhook is not None:
        file = cfg.webhook.get("url_file")
        env = None if file else cfg.webhook.get("url_env", "TRANSFERLAB_WEBHOOK_URL")
        out.append(WebhookChannel(_secret(env, file, "[webhook]"), float(cfg.webhook.get("timeout", 10))))
    if cfg.email is not None:
        password = None
        if cfg.email.get("user"):
            password = _secret(cfg.email.get("password_env"), cfg.email.get("password_file"), "[email]")
        out.append(EmailChannel(cfg.email, password))
    if not out:
        raise ConfigError("no notification channel", hint="add a [webhook] or an [email] table")
    return out


# ------------------------------------------------------------------------------------------------ the loop
@dataclass
class RoundReport:
    ingested: dict = field(default_factory=dict)  # source -> records read, or the error
    skipped_sources: list[str] = field(default_factory=list)  # in backoff
    warnings: int = 0
    sent: dict = field(default_factory=dict)  # channel -> sent this round
    failed: dict = field(default_factory=dict)  # channel -> error


class Watch:
    """One watch: its sources, its scan (a :class:`~transferlab.serve.vuln_api.VulnService`) and its channels."""

    def __init__(self, cfg: WatchConfig, store, service, channels: list, *, clock: Callable[[], float] = time.time,
                 connector_factory: Callable | None = None, registry=None):
        self.cfg, self.store, self.service, self.channels = cfg, store, service, channels
        self.clock = clock
        self._connector = connector_factory
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self._metrics(registry)

    def _metrics(self, registry) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = registry or CollectorRegistry()
        self.m_rounds = Counter("transferlab_watch_rounds", "watch rounds run", registry=self.registry)
        self.m_source_failures = Counter("transferlab_watch_source_failures", "source reads that failed",
                                         ["source"], registry=self.registry)
        self.m_sent = Counter("transferlab_watch_notifications", "early warnings sent", ["channel"],
                              registry=self.registry)
        self.m_channel_failures = Counter("transferlab_watch_channel_failures", "sends that failed", ["channel"],
                                          registry=self.registry)
        self.m_last_ok = Gauge("transferlab_watch_last_round_timestamp", "end of the last round (Unix time)",
                               registry=self.registry)
        self.m_warnings = Gauge("transferlab_watch_early_warnings", "early warnings in the last scan",
                                registry=self.registry)

    def _connect(self, spec: dict):
        if self._connector:
            return self._connector(spec)
        from .sources import make_connector

        return make_connector(**{k: v for k, v in spec.items() if k in SOURCE_KEYS})

    def run_round(self) -> RoundReport:
        from .ingest import ingest

        report = RoundReport()
        now = self.clock()
        for i, spec in enumerate(self.cfg.sources):
            name = f"{spec['source']}#{i}"
            if self.retry_at.get(name, 0) > now:
                report.skipped_sources.append(name)
                continue
            try:
                result = ingest(self._connect(spec), self.store, progress=False)
                error = result.error
            except Exception as exc:  # noqa: BLE001 - one source's failure never stops the others
                result, error = None, f"{type(exc).__name__}: {one_line(exc)[:300]}"
            if error:
                self.failures[name] = self.failures.get(name, 0) + 1
                wait = min(self.cfg.max_backoff, self.cfg.interval * 2 ** (self.failures[name] - 1))
                self.retry_at[name] = now + wait
                self.m_source_failures.labels(name).inc()
                report.ingested[name] = f"failed ({error}); next try in {wait:.0f}s"
                log.warning("source %s failed: %s", name, error)
            else:
                self.failures.pop(name, None)
                self.retry_at.pop(name, None)
                report.ingested[name] = result.read
        self.service.refresh()
        warnings = self.service.items(status="early-warning")
        report.warnings = len(warnings)
        self.m_warnings.set(len(warnings))
        for channel in self.channels:
            told = self.store.notified(channel.name)
            if not told and not self.cfg.notify_existing and not self._started(channel.name):
                self.store.mark_notified(channel.name, [w["id"] for w in warnings], status="baseline")
                self._mark_started(channel.name)
                report.sent[channel.name] = 0
                continue
            self._mark_started(channel.name)
            sent = 0
            for item in warnings:
                if item["id"] in told:
                    continue
                try:
                    channel.send(item, self.cfg.base_url)
                except Exception as exc:  # noqa: BLE001 - retried next round with everything still unsent
                    self.m_channel_failures.labels(channel.name).inc()
                    report.failed[channel.name] = one_line(exc)[:300]
                    log.warning("channel %s failed: %s", channel.name, report.failed[channel.name])
                    break
                self.store.mark_notified(channel.name, [item["id"]])
                sent += 1
                self.m_sent.labels(channel.name).inc()
            report.sent[channel.name] = sent
        self.m_rounds.inc()
        self.m_last_ok.set(self.clock())
        return report

    # a channel's first round is remembered in the store (a checkpoint), so a restart is not a first round again
    def _started(self, channel: str) -> bool:
        return self.store.checkpoint(f"watch:channel:{channel}") is not None

    def _mark_started(self, channel: str) -> None:
        if not self._started(channel):
            self.store.set_checkpoint(f"watch:channel:{channel}", {"since": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                         time.gmtime())})

    def run(self, stop: threading.Event, announce: Callable[[str], None] = log.info) -> None:
        """Rounds every ``interval`` until ``stop`` is set."""
        if self.cfg.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(int(self.cfg.metrics_port), addr="127.0.0.1", registry=self.registry)
        while not stop.is_set():
            started = self.clock()
            try:
                r = self.run_round()
                announce(f"round: ingested {r.ingested}, {r.warnings} early warning(s), sent {r.sent}"
                         + (f", failed {r.failed}" if r.failed else "")
                         + (f", waiting out {r.skipped_sources}" if r.skipped_sources else ""))
            except Exception as exc:  # noqa: BLE001 - the loop survives a bad round (the store down, say)
                log.exception("watch round failed")
                announce(f"round failed: {one_line(exc)[:300]}")
            stop.wait(max(0.0, self.cfg.interval - (self.clock() - started)))
