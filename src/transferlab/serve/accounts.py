"""Accounts of the service: users (reviewer or admin), their passwords and API tokens, in the store's database.

Secrets are kept only as salted hashes made with scrypt (RFC 7914), the memory-hard key-derivation function of
Python's ``hashlib`` (OpenSSL's implementation): ``scrypt$N$r$p$salt$hash``.  A token reads
``tlk_<public id>_<secret>``: the public id finds its row, the secret is checked against the hash in constant time,
and an unknown id still costs one hash so that timing does not tell which ids exist.  A token is shown once, when
created, and can only be revoked, never read back.  Every statement is built by SQLAlchemy with bound parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from ..errors import ConfigError, TransferLabError

PREFIX = "tlk_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 12
# scrypt cost: N = 2^15, r = 8 (32 MiB, about 50-100 ms here): OWASP's minimum for scrypt is N = 2^17 with
# r = 8 for *passwords*; tokens carry 256 random bits, where any salted hash would do, and verified tokens are
# remembered for CACHE_SECONDS, so the per-request cost stays off the hot path.
SCRYPT = dict(n=2 ** 15, r=8, p=1)
MAXMEM = 64 * 1024 * 1024
CACHE_SECONDS = 30.0


class AccountError(TransferLabError):
    """An account operation that cannot be done as asked (unknown user, duplicate name, weak password...)."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` of ``secret`` with a fresh 16-byte salt (the cost read from SCRYPT now)."""
    n, r, p = SCRYPT["n"], SCRYPT["r"], SCRYPT["p"]
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=MAXMEM, dklen=32)
    enc = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${n}${r}${p}${enc(salt)}${enc(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(secret.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY = None  # a hash checked when a token's id is unknown, so both cases cost the same


def _dummy() -> str:
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_secret(secrets.token_urlsafe(32))
    return _DUMMY


def read_secret_file(path: str | Path) -> str:
    """A password or other secret from a file that only its owner may read (mode 0600 or stricter)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read the secret file ({exc.strerror})", where=str(path)) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("the secret file can be read by others", where=str(path),
                          hint=f"chmod 600 {path}")
    return path.read_text(encoding="utf-8").rstrip("\r\n")


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Accounts:
    """Users and tokens in a :class:`~transferlab.vuln.store.Store`."""

    def __init__(self, store):
        from ..vuln import store as st

        self.store, self.users, self.tokens = store, st.users, st.api_tokens
        self._cache: dict[str, tuple[User, float]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- users
    def add_user(self, name: str, role: str, password: str | None = None) -> User:
        from ..vuln.store import ROLES

        if not NAME.fullmatch(name or ""):
            raise AccountError(f"user name {name!r} is not allowed",
                               hint="1-64 letters, digits and . _ @ -, starting with a letter or digit")
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}", hint=f"one of {', '.join(ROLES)}")
        hashed = self._password_hash(password) if password is not None else None
        with self.store.engine.begin() as conn:
            if conn.execute(sa.select(self.users.c.id).where(self.users.c.name == name)).first():
                raise AccountError(f"a user named {name!r} exists", hint="choose another name")
            result = conn.execute(self.users.insert().values(name=name, role=role, password_hash=hashed,
                                                              created_at=_now()))
            return User(int(result.inserted_primary_key[0]), name, role)

    @staticmethod
    def _password_hash(password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password is shorter than {MIN_PASSWORD} characters",
                               hint="a passphrase of a few words is easy to type and hard to guess")
        return hash_secret(password)

    def set_password(self, name: str, password: str) -> None:
        hashed = self._password_hash(password)
        with self.store.engine.begin() as conn:
            if conn.execute(self.users.update().where(self.users.c.name == name)
                            .values(password_hash=hashed)).rowcount != 1:
                raise AccountError(f"no user named {name!r}")

    def disable_user(self, name: str) -> None:
        """The user can no longer log in, and every token of theirs stops working."""
        with self.store.engine.begin() as conn:
            if conn.execute(self.users.update().where(self.users.c.name == name)
                            .values(disabled_at=_now())).rowcount != 1:
                raise AccountError(f"no user named {name!r}")
        self.forget()

    def list_users(self) -> list[dict]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(self.users.c.name, self.users.c.role, self.users.c.created_at,
                                          self.users.c.disabled_at,
                                          (self.users.c.password_hash.is_not(None)).label("has_password"))
                                .order_by(self.users.c.name))
            return [dict(r._mapping) for r in rows]

    def get_user(self, name: str) -> User | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(self.users).where(self.users.c.name == name,
                                                           self.users.c.disabled_at.is_(None))).first()
        return User(row.id, row.name, row.role) if row else None

    def login(self, name: str, password: str) -> User | None:
        """The user, when ``password`` is theirs and the account is active; None otherwise (same cost either way)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(self.users).where(self.users.c.name == name)).first()
        stored = row.password_hash if row is not None and row.password_hash else _dummy()
        ok = verify_secret(password, stored)
        if not ok or row is None or not row.password_hash or row.disabled_at is not None:
            return None
        return User(row.id, row.name, row.role)

    # ------------------------------------------------------------------------------------------ tokens
    def create_token(self, name: str) -> tuple[str, str]:
        """(public id, token): the token is returned once and only its hash is kept."""
        user = self.get_user(name)
        if user is None:
            raise AccountError(f"no active user named {name!r}", hint="transferlab serve user add NAME first")
        public_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self.store.engine.begin() as conn:
            conn.execute(self.tokens.insert().values(public_id=public_id, user_id=user.id,
                                                     secret_hash=hash_secret(secret), created_at=_now()))
        return public_id, f"{PREFIX}{public_id}_{secret}"

    def revoke_token(self, public_id: str) -> None:
        with self.store.engine.begin() as conn:
            if conn.execute(self.tokens.update().where(self.tokens.c.public_id == public_id,
                                                       self.tokens.c.revoked_at.is_(None))
                            .values(revoked_at=_now())).rowcount != 1:
                raise AccountError(f"no active token with id {public_id!r}", hint="transferlab serve token list")
        self.forget()

    def list_tokens(self, name: str | None = None) -> list[dict]:
        query = (sa.select(self.tokens.c.public_id, self.users.c.name.label("user"), self.tokens.c.created_at,
                           self.tokens.c.last_used_at, self.tokens.c.revoked_at)
                 .join(self.users, self.users.c.id == self.tokens.c.user_id).order_by(self.tokens.c.id))
        if name is not None:
            query = query.where(self.users.c.name == name)
        with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def authenticate(self, token: str) -> User | None:
        """The active user a token belongs to, or None.  A verified token is remembered for CACHE_SECONDS (keyed
        by its SHA-256, never the token), so revoking it in another process takes effect within that time."""
        if not token.startswith(PREFIX) or "_" not in token[len(PREFIX):]:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[1] > now:
                return hit[0]
        public_id, secret = token[len(PREFIX):].split("_", 1)
        query = (sa.select(self.tokens.c.id, self.tokens.c.secret_hash, self.users.c.id.label("uid"),
                           self.users.c.name, self.users.c.role)
                 .join(self.users, self.users.c.id == self.tokens.c.user_id)
                 .where(self.tokens.c.public_id == public_id, self.tokens.c.revoked_at.is_(None),
                        self.users.c.disabled_at.is_(None)))
        with self.store.engine.connect() as conn:
            row = conn.execute(query).first()
        if not verify_secret(secret, row.secret_hash if row else _dummy()) or row is None:
            return None
        with self.store.engine.begin() as conn:
            conn.execute(self.tokens.update().where(self.tokens.c.id == row.id).values(last_used_at=_now()))
        user = User(row.uid, row.name, row.role)
        with self._lock:
            self._cache[key] = (user, now + CACHE_SECONDS)
        return user

    def forget(self) -> None:
        """Drop remembered tokens (after a revocation or a disabled user in this process)."""
        with self._lock:
            self._cache.clear()
