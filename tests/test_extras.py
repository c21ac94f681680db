"""The toolkit stays light (issue 17): importing it and running its CLI loads none of the early-warning
application's packages, and a `vuln` command without them says what to install."""

import subprocess
import sys

from typer.testing import CliRunner

VULN_ONLY = ("sqlalchemy", "alembic", "psycopg", "requests", "urllib3", "defusedxml", "fastapi", "uvicorn")


def test_toolkit_imports_none_of_the_vuln_extra():
    code = ("import sys, transferlab, transferlab.cli, transferlab.models.classifier, transferlab.bench.runner; "
            f"print(','.join(m for m in {VULN_ONLY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"the toolkit imported {out}"


def test_vuln_command_without_the_extra_says_how_to_install_it(monkeypatch):
    from transferlab.cli import app
    from transferlab.vuln import cli as vuln_cli

    assert vuln_cli.missing_extra() == []  # installed here (scripts/setup.sh installs the extra)
    real = __import__("importlib.util", fromlist=["find_spec"]).find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name in ("sqlalchemy", "psycopg")
                        else real(name, *a))
    assert vuln_cli.missing_extra() == ["psycopg", "sqlalchemy"]
    res = CliRunner().invoke(app, ["vuln", "ingest", "--source", "mbox", "--path", "x.mbox"])
    assert res.exit_code == 2
    assert "psycopg, sqlalchemy" in res.output and "pip install 'transferlab[vuln]'" in res.output
