"""Mailing lists: mbox files, pipermail monthly archives (``.txt``, ``.txt.gz``) and hyperkitty exports.

All three are mbox underneath.  Real archives are messy, so nothing here trusts them: headers in any encoding
(RFC 2047 words, raw 8-bit, unknown charsets), multipart bodies, HTML-only messages, pipermail's obfuscated
addresses ("user at example.com"), messages without a Message-ID or a Date.  A message that cannot be decoded
cleanly is still kept, decoded with replacement characters; only a message with no headers and no text at all
is a counted skip.  The raw message is stored byte for byte (as latin-1 text, which maps every byte).
"""

from __future__ import annotations

import hashlib
import html
import re
from email import message_from_bytes
from email.header import Header, decode_header
from email.message import Message
from email.utils import getaddresses
from pathlib import Path
from typing import Iterable, Iterator

from ..records import Record, parse_time
from .base import Batch, FileConnector, Skip

SUFFIXES = (".mbox", ".mbox.gz", ".txt", ".txt.gz", ".gz", ".bz2", ".mbx", ".eml")
_OBFUSCATED = re.compile(r"([\w.+-]+) at ([\w-]+(?:\.[\w-]+)+)")
_LIST_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw)\s*:\s*)*\[([^\]]+)\]", re.IGNORECASE)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    if len(data) >= 200:  # long enough for a guess to beat Windows-1252, the commonest unlabelled 8-bit text
        from charset_normalizer import from_bytes  # ships with requests

        guess = from_bytes(data).best()
        if guess is not None:
            return str(guess)
    return data.decode("cp1252", errors="replace")


def header_text(value) -> str:
    """A header as text whatever it is made of: RFC 2047 encoded words, raw 8-bit bytes, unknown charsets."""
    if value is None:
        return ""
    try:
        parts = decode_header(value if isinstance(value, Header) else str(value))
    except Exception:  # noqa: BLE001 - a malformed header must not cost the message
        return str(value)
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str) and re.search(r"[\udc80-\udcff]", chunk):  # raw 8-bit bytes, no charset said
            chunk = chunk.encode("utf-8", errors="surrogateescape")
        out.append(_decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    text = "".join(out)
    if isinstance(value, Header) and "=?" in text:  # 8-bit bytes beside encoded words: decode the words too
        return header_text(text)
    return re.sub(r"\s+", " ", text).strip()


def _deobfuscate(text: str) -> str:
    return text if "@" in text else _OBFUSCATED.sub(r"\1@\2", text)


def body_text(msg: Message) -> str:
    """The readable text: every text/plain part in order; HTML stripped of tags when there is nothing else."""
    plain, htmls = [], []
    for part in msg.walk() if msg.is_multipart() else [msg]:
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if (part.get("Content-Disposition") or "").lower().startswith("attachment"):
            continue
        try:
            data = part.get_payload(decode=True)
        except Exception:  # noqa: BLE001 - a broken transfer encoding: keep what is there
            data = None
        if data is None:
            payload = part.get_payload()
            data = payload.encode("latin-1", errors="replace") if isinstance(payload, str) else b""
        text = _decode_bytes(data, part.get_content_charset())
        (htmls if part.get_content_subtype() == "html" else plain).append(text)
    if plain:
        return "\n\n".join(t.strip() for t in plain).strip()
    stripped = [html.unescape(re.sub(r"<[^>]+>", " ", t)) for t in htmls]
    return re.sub(r"[ \t]+", " ", "\n\n".join(stripped)).strip()


def split_mbox(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Messages of an mbox stream: each starts at a ``From `` line at the top or after a blank line."""
    current: list[bytes] = []
    previous_blank = True
    for line in lines:
        if line.startswith(b"From ") and previous_blank and current:
            yield b"".join(current)
            current = []
        current.append(line)
        previous_blank = not line.strip()
    if current and any(x.strip() for x in current):
        yield b"".join(current)


def message_record(raw: bytes, project: str | None, connector: str) -> Record | None:
    """One message as a record, or None when it has neither headers nor text."""
    unixfrom, _, rest = raw.partition(b"\n") if raw.startswith(b"From ") else (b"", b"", raw)
    msg = message_from_bytes(rest)
    subject, body = header_text(msg.get("Subject")), body_text(msg)
    if not msg.keys() and not body:
        return None
    message_id = header_text(msg.get("Message-ID")).strip().strip("<>").strip()
    native_id = message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    sent = parse_time(header_text(msg.get("Date")))
    if sent is None and unixfrom:
        sent = parse_time(" ".join(unixfrom.decode("latin-1").split()[-5:]))
    author = _deobfuscate(header_text(msg.get("From")))
    names = getaddresses([author])
    if names and names[0][1]:
        author = names[0][1] if not names[0][0] else f"{names[0][0]} <{names[0][1]}>"
    list_id = header_text(msg.get("List-Id"))
    if project is None:
        found = re.search(r"<([^>]+)>", list_id) or _LIST_PREFIX.match(subject)
        project = found.group(1) if found else "unknown-list"
    reply_to = header_text(msg.get("In-Reply-To")).strip().strip("<>").strip() or None
    archived = header_text(msg.get("Archived-At")).strip("<> ") or None
    return Record(source="mail", connector=connector, project=project, kind="mail", native_id=native_id,
                  url=archived, title=subject, body=body, author=author or None, created_at=sent,
                  updated_at=sent, labels=[], parent_id=reply_to,
                  raw={"format": "rfc822-latin1", "message": raw.decode("latin-1").replace("\x00", "")})


class MailConnector(FileConnector):
    """mbox / pipermail / hyperkitty files or folders of them.  ``project`` names the list when headers do not."""

    suffixes = SUFFIXES
    unit = "message"
    hint = "give mbox files, pipermail .txt/.txt.gz archives or a folder of them"

    def __init__(self, paths: str | Path | Iterable[str | Path], kind: str = "mbox", project: str | None = None,
                 batch_size: int = 200):
        super().__init__(paths, batch_size)
        self.name = kind
        self.project = project

    def _units(self, stream):
        return split_mbox(stream)

    def _read_unit(self, name: str, number: int, raw: bytes, batch: Batch) -> None:
        try:
            record = message_record(raw, self.project, self.name)
        except Exception as err:  # noqa: BLE001 - one broken message is counted, the archive goes on
            batch.skips.append(Skip(f"{name}: message {number}", f"cannot be parsed: {type(err).__name__}: {err}"))
            return
        if record is None:
            batch.skips.append(Skip(f"{name}: message {number}", "no headers and no text"))
        else:
            batch.records.append(record)
