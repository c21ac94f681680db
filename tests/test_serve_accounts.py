"""Accounts (serve/accounts.py and `transferlab serve user|token`): secrets stored only as salted scrypt hashes,
tokens shown once, wrong/revoked/disabled credentials refused, passwords read only from private files or a prompt."""

import os

import pytest
import sqlalchemy as sa

pytest.importorskip("sqlalchemy")

from typer.testing import CliRunner  # noqa: E402

from transferlab.serve import accounts as acc  # noqa: E402
from transferlab.serve.accounts import AccountError, Accounts  # noqa: E402
from transferlab.vuln.store import Store  # noqa: E402


@pytest.fixture(autouse=True)
def cheap_kdf(monkeypatch):
    # the real cost (N = 2^15) is for production; the format and the checks are the same at N = 2^4
    monkeypatch.setitem(acc.SCRYPT, "n", 2 ** 4)


@pytest.fixture
def accounts(tmp_path):
    return Accounts(Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}"))


def dump(store) -> str:
    """Every value in the accounts tables, as text: to look for a secret that should not be there."""
    with store.engine.connect() as conn:
        rows = [r for t in ("users", "api_tokens") for r in conn.execute(sa.text(f"SELECT * FROM {t}"))]
    return repr(rows)


def test_passwords_are_salted_hashes_and_login_checks_them(accounts):
    accounts.add_user("ana", "reviewer", "correct horse battery")
    accounts.add_user("bo", "admin", "correct horse battery")
    stored = dump(accounts.store)
    assert "correct horse" not in stored and stored.count("scrypt$16$") == 2
    with accounts.store.engine.connect() as conn:
        hashes = [u for u in conn.execute(sa.text("SELECT password_hash FROM users"))]
    assert hashes[0] != hashes[1]  # same password, different salts
    assert accounts.login("ana", "correct horse battery").role == "reviewer"
    assert accounts.login("ana", "wrong horse battery!") is None
    assert accounts.login("nobody", "correct horse battery") is None
    accounts.disable_user("ana")
    assert accounts.login("ana", "correct horse battery") is None
    with pytest.raises(AccountError, match="shorter than 12"):
        accounts.add_user("cy", "reviewer", "short")
    with pytest.raises(AccountError, match="exists"):
        accounts.add_user("bo", "admin", "another long password")
    with pytest.raises(AccountError, match="unknown role"):
        accounts.add_user("dee", "root", "another long password")
    with pytest.raises(AccountError, match="not allowed"):
        accounts.add_user("<script>", "reviewer", None)


def test_tokens_are_shown_once_kept_as_hashes_and_stop_working_when_revoked(accounts):
    accounts.add_user("ana", "reviewer", None)
    public_id, token = accounts.create_token("ana")
    assert token.startswith(f"tlk_{public_id}_") and token.split("_", 2)[2] not in dump(accounts.store)
    user = accounts.authenticate(token)
    assert user is not None and user.name == "ana" and not user.is_admin
    assert accounts.list_tokens("ana")[0]["last_used_at"] is not None
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "tlk_000000000000_x", "Bearer " + token, "", "tlk_"):
        assert accounts.authenticate(bad) is None
    accounts.revoke_token(public_id)
    assert accounts.authenticate(token) is None
    with pytest.raises(AccountError, match="no active token"):
        accounts.revoke_token(public_id)
    _, second = accounts.create_token("ana")
    accounts.disable_user("ana")
    assert accounts.authenticate(second) is None  # a disabled user's tokens stop working
    with pytest.raises(AccountError, match="no active user"):
        accounts.create_token("ana")


def test_secret_files_must_be_private(tmp_path):
    path = tmp_path / "pw"
    path.write_text("a long enough password\n")
    os.chmod(path, 0o644)
    with pytest.raises(Exception, match="can be read by others"):
        acc.read_secret_file(path)
    os.chmod(path, 0o600)
    assert acc.read_secret_file(path) == "a long enough password"


def test_cli_user_and_token_commands(tmp_path):
    from transferlab.cli import app

    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    runner = CliRunner()
    res = runner.invoke(app, ["serve", "user", "add", "ana", "--role", "admin", "--db", db],
                        input="a long enough password\na long enough password\n")
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["serve", "user", "add", "bo", "--no-password", "--db", db])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["serve", "user", "list", "--db", db])
    lines = [" ".join(line.split()) for line in res.stdout.splitlines()]
    assert lines == ["ana admin active password", "bo reviewer active tokens only"]
    res = runner.invoke(app, ["serve", "token", "create", "bo", "--db", db])
    assert res.exit_code == 0, res.output
    token = res.stdout.strip().splitlines()[-1]
    accounts = Accounts(Store.open(db))
    assert accounts.authenticate(token).name == "bo"
    listed = runner.invoke(app, ["serve", "token", "list", "--db", db]).stdout
    assert token not in listed and "bo" in listed and "active" in listed
    public_id = token.split("_")[1]
    assert runner.invoke(app, ["serve", "token", "revoke", public_id, "--db", db]).exit_code == 0
    accounts.forget()
    assert accounts.authenticate(token) is None
    res = runner.invoke(app, ["serve", "user", "add", "cy", "--role", "root", "--no-password", "--db", db])
    assert res.exit_code == 2 and "unknown role" in res.output
