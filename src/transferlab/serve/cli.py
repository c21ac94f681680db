"""``transferlab serve``: the HTTP API (see app.py).  Needs the ``serve`` extra; without it, says how to install."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..cli_common import err, escape, friendly

serve_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                        help="Serve models over HTTP (FastAPI): POST /v1/classify, /healthz, /readyz, /metrics, "
                             "OpenAPI at /docs.")

EXTRA_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "prometheus_client": "prometheus-client",
                 "multipart": "python-multipart", "jinja2": "jinja2"}


def missing_extra() -> list[str]:
    import importlib.util

    return sorted(dist for module, dist in EXTRA_MODULES.items() if importlib.util.find_spec(module) is None)


def _named(specs: list[str]) -> dict[str, str]:
    """``NAME=PATH`` or ``PATH`` (named after its folder) -> {name: path}; names must differ."""
    from pathlib import Path

    from ..errors import ConfigError

    models: dict[str, str] = {}
    for spec in specs:
        name, _, path = spec.partition("=") if "=" in spec else (Path(spec).name, "", spec)
        if not name or not path:
            raise ConfigError(f"--model {spec!r} needs a folder, as PATH or NAME=PATH")
        if name in models:
            raise ConfigError(f"two models are named {name!r}", where="--model", hint="name them: --model NAME=PATH")
        if not Path(path).is_dir():
            raise ConfigError("no such model folder", where=path, hint="a folder written by `transferlab train`")
        models[name] = path
    return models


@serve_app.callback()
@friendly
def serve(
    ctx: typer.Context,
    model: Optional[List[str]] = typer.Option(None, "--model", help="a classifier folder to serve, PATH or NAME=PATH "
                                              "(repeatable; the name is what requests give as \"model\")"),
    runtime: str = typer.Option("auto", "--runtime", help="auto | onnx | openvino | bf16 | torch (as for predict)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: every interface; put "
                             "TLS in front)"),
    port: int = typer.Option(8000, "--port"),
    keep_alive: int = typer.Option(75, "--keep-alive", help="seconds an idle client connection stays open; longer "
                                   "than any client's or proxy's own idle timeout, so that none reuses a connection "
                                   "the server is closing (uvicorn's 5 s gave load-test clients connection resets)"),
    max_body_bytes: int = typer.Option(1 << 20, "--max-body-bytes", help="largest request body (413 above)"),
    max_texts: int = typer.Option(256, "--max-texts", help="texts per request (413 above)"),
    max_text_chars: int = typer.Option(20_000, "--max-text-chars", help="characters per text (413 above)"),
    rate: float = typer.Option(20.0, "--rate", help="requests per second per client, on average (429 above; 0: no "
                               "limit)"),
    burst: int = typer.Option(40, "--burst", help="requests a client may send at once before the rate applies"),
    max_batch: int = typer.Option(64, "--max-batch", help="texts per forward pass: concurrent requests are merged up "
                                  "to this"),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="how long a batch waits for more requests"),
    max_queue: int = typer.Option(1024, "--max-queue", help="texts that may wait per model (503 above)"),
    cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin", help="allow browser calls from this "
                                                    "origin (repeatable; default: CORS off)"),
    db: Optional[str] = typer.Option(None, "--db", envvar="TRANSFERLAB_VULN_DB", help="the store: accounts (serve "
                                     "user/token) and early-warning items"),
    auth_reads: bool = typer.Option(False, "--auth-reads", help="every request needs a token, reads too (writes "
                                    "always do)"),
    manifest: Optional[List[str]] = typer.Option(None, "--manifest", help="serve the early-warning items of these "
                                                 "manifests (as for `vuln scan`; repeatable; needs --db)"),
    cascade: Optional[str] = typer.Option(None, "--cascade", help="the cascade folder (default: the shipped one)"),
    mapping: Optional[str] = typer.Option(None, "--mapping", help="TOML file mapping packages to projects"),
    osv: Optional[str] = typer.Option(None, "--osv", help="OSV export (folder or zip) to tell known from new"),
    online: bool = typer.Option(False, "--online", help="let the mapping ask package registries (default: mapping "
                                "file and cache only)"),
    retrain_dir: Optional[str] = typer.Option(None, "--retrain-dir", help="where the admins' \"retrain now\" writes "
                                              "new cascades (off without it)"),
):
    """Serve classifiers over HTTP until stopped (Ctrl-C)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..errors import ConfigError

    missing = missing_extra()
    if missing:
        raise ConfigError(f"the service needs packages that are not installed: {', '.join(missing)}",
                          hint="pip install 'transferlab[serve]'")
    models = _named(model or [])
    if not models and not manifest:
        raise ConfigError("nothing to serve", where="--model", hint="--model runs/m (a folder written by "
                          "`transferlab train`), and/or --manifest requirements.txt --db URL for the early warning")
    vuln = None
    if manifest:
        from .vuln_api import VulnConfig

        if not db:
            raise ConfigError("the early-warning items live in the store", where="--db", hint="--db URL")
        vuln = VulnConfig(cascade=cascade, manifests=list(manifest), mapping=mapping, osv=osv, offline=not online,
                          runtime=runtime, retrain_dir=retrain_dir)
    import uvicorn

    from .app import Settings, create_app

    settings = Settings(models=models, runtime=runtime, max_body_bytes=max_body_bytes, max_texts=max_texts,
                        max_text_chars=max_text_chars, rate=rate, burst=burst, max_batch=max_batch,
                        max_wait_ms=max_wait_ms, max_queue=max_queue, cors_origins=list(cors_origin or []),
                        db=db, auth_reads=auth_reads, vuln=vuln)
    app = create_app(settings)
    what = ", ".join(list(models) + (["the early warning"] if vuln else []))
    err.print(escape(f"serving {what} on http://{host}:{port} (OpenAPI at /docs)"), highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False, server_header=False,
                timeout_keep_alive=keep_alive)


# ------------------------------------------------------------------------------------------------- accounts
user_app = typer.Typer(no_args_is_help=True, help="Users of the service: reviewers judge, admins also manage "
                                                  "users and retrain.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens: shown once when created, stored only as salted "
                                                   "hashes.")
serve_app.add_typer(user_app, name="user")
serve_app.add_typer(token_app, name="token")

DB = typer.Option("sqlite:///transferlab-vuln.db", "--db", envvar="TRANSFERLAB_VULN_DB",
                  help="the store's SQLAlchemy URL (as for `transferlab vuln`); a password belongs in the environment "
                       "variable, not on the command line")
PASSWORD_FILE = typer.Option(None, "--password-file", help="read the password from this file (mode 600), instead "
                             "of asking for it")


def _accounts(db: str):
    from ..vuln.cli import missing_extra as vuln_missing
    from ..errors import ConfigError

    if vuln_missing():
        raise ConfigError(f"accounts live in the store, which needs {', '.join(vuln_missing())}",
                          hint="pip install 'transferlab[vuln]'")
    from ..vuln.store import Store
    from .accounts import Accounts

    return Accounts(Store.open(db))


def _password(password_file: Optional[str]) -> str:
    from .accounts import read_secret_file

    if password_file:
        return read_secret_file(password_file)
    return typer.prompt("password", hide_input=True, confirmation_prompt=True, err=True)


@user_app.command("add")
@friendly
def user_add(name: str = typer.Argument(..., help="the user's name (shown beside their verdicts)"),
             role: str = typer.Option("reviewer", "--role", help="reviewer | admin"),
             no_password: bool = typer.Option(False, "--no-password", help="no password: API tokens only, no login "
                                              "to the pages"),
             password_file: Optional[str] = PASSWORD_FILE, db: str = DB):
    """Add a user (asks for a password unless --no-password or --password-file)."""
    accounts = _accounts(db)
    user = accounts.add_user(name, role, None if no_password else _password(password_file))
    err.print(escape(f"added {user.name} ({user.role})"), highlight=False)


@user_app.command("passwd")
@friendly
def user_passwd(name: str = typer.Argument(...), password_file: Optional[str] = PASSWORD_FILE, db: str = DB):
    """Set a user's password."""
    _accounts(db).set_password(name, _password(password_file))
    err.print(escape(f"password of {name} changed"), highlight=False)


@user_app.command("disable")
@friendly
def user_disable(name: str = typer.Argument(...), db: str = DB):
    """Disable a user: no login, and none of their tokens work (their verdicts stay)."""
    _accounts(db).disable_user(name)
    err.print(escape(f"disabled {name}"), highlight=False)


@user_app.command("list")
@friendly
def user_list(db: str = DB):
    """The users, their roles and whether each is active."""
    from ..cli_common import out

    for u in _accounts(db).list_users():
        state = "disabled" if u["disabled_at"] else "active"
        out.print(escape(f"{u['name']}\t{u['role']}\t{state}\t{'password' if u['has_password'] else 'tokens only'}"),
                  highlight=False)


@token_app.command("create")
@friendly
def token_create(name: str = typer.Argument(..., help="the user the token acts as"), db: str = DB):
    """Create an API token for a user.  The token is printed once, on standard output; keep it secret."""
    public_id, token = _accounts(db).create_token(name)
    err.print(escape(f"token {public_id} for {name}: shown once, store it now (only its hash is kept)"),
              highlight=False)
    print(token)


@token_app.command("list")
@friendly
def token_list(name: Optional[str] = typer.Argument(None, help="only this user's tokens"), db: str = DB):
    """Token ids, their users and when each was created, last used and revoked (never the tokens)."""
    from ..cli_common import out

    for t in _accounts(db).list_tokens(name):
        out.print(escape(f"{t['public_id']}\t{t['user']}\tcreated {t['created_at']:%Y-%m-%d %H:%M}\t"
                         f"last used {t['last_used_at'] or '-'}\t{'revoked' if t['revoked_at'] else 'active'}"),
                  highlight=False)


@token_app.command("revoke")
@friendly
def token_revoke(public_id: str = typer.Argument(..., help="the token's id (`serve token list`)"), db: str = DB):
    """Revoke a token (a running server stops accepting it within 30 seconds)."""
    _accounts(db).revoke_token(public_id)
    err.print(escape(f"revoked {public_id}"), highlight=False)
