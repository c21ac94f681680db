"""``transferlab serve``: the HTTP API (see app.py).  Needs the ``serve`` extra; without it, says how to install."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..cli_common import err, escape, friendly

serve_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                        help="Serve models over HTTP (FastAPI): POST /v1/classify, /healthz, /readyz, /metrics, "
                             "OpenAPI at /docs.")

EXTRA_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "prometheus_client": "prometheus-client",
                 "multipart": "python-multipart"}


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
    if not models:
        raise ConfigError("nothing to serve", where="--model", hint="--model runs/m (a folder written by "
                          "`transferlab train`)")
    import uvicorn

    from .app import Settings, create_app

    settings = Settings(models=models, runtime=runtime, max_body_bytes=max_body_bytes, max_texts=max_texts,
                        max_text_chars=max_text_chars, rate=rate, burst=burst, max_batch=max_batch,
                        max_wait_ms=max_wait_ms, max_queue=max_queue, cors_origins=list(cors_origin or []))
    app = create_app(settings)
    err.print(escape(f"serving {', '.join(models)} on http://{host}:{port} (OpenAPI at /docs)"), highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False, server_header=False)
