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
from .fields import bounded

SUFFIXES = (".mbox", ".mbox.gz", ".txt", ".txt.gz", ".gz", ".bz2", ".mbx", ".eml")
# The look-behind lets a match start only where a word starts: without it, every position of a 40 kB run of
# letters started a scan to the run's end (quadratic: 8 s for one header); with it the search is linear.
_OBFUSCATED = re.compile(r"(?<![\w.+-])([\w.+-]+) at ([\w-]+(?:\.[\w-]+)+)")
# ``[^<>]`` for the same reason: ``<[^>]+>`` rescanned to the end from each ``<`` of a run of them.
_ANGLED = re.compile(r"<([^<>]+)>")
_TAG = re.compile(r"<[^<>]+>")
_LIST_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw)\s*:\s*)*\[([^\]]+)\]", re.IGNORECASE)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Text in the charset the message names when Python has it and the bytes fit, else UTF-8, else a guess;
    never an error: ``charset=undefined`` names a codec that always raises, others name none at all."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeError, ValueError, TypeError):  # unknown, "undefined", a NUL in the name
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
        if str(part.get("Content-Disposition") or "").lower().startswith("attachment"):
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
    stripped = [html.unescape(_TAG.sub(" ", t)) for t in htmls]
    return re.sub(r"[ \t]+", " ", "\n\n".join(stripped)).strip()


class TooLarge(int):
    """Stands for a message over the size cap (its size in bytes): counted as a skip, never held whole."""


def split_mbox(lines: Iterable[bytes], max_bytes: int | None = None) -> Iterator[bytes | TooLarge]:
    """Messages of an mbox stream: each starts at a ``From `` line at the top or after a blank line.  A message
    over ``max_bytes`` (many short lines can make one of gigabytes) is passed over as it streams by and
    yielded as its :class:`TooLarge` size instead."""
    current: list[bytes] = []
    size, previous_blank = 0, True
    for line in lines:
        if line.startswith(b"From ") and previous_blank and (current or size):
            yield TooLarge(size) if max_bytes is not None and size > max_bytes else b"".join(current)
            current, size = [], 0
        size += len(line)
        if max_bytes is None or size <= max_bytes:
            current.append(line)
        else:
            current = []
        previous_blank = not line.strip()
    if max_bytes is not None and size > max_bytes:
        yield TooLarge(size)
    elif current and any(x.strip() for x in current):
        yield b"".join(current)


def _author(text: str) -> str:
    """``Name <address>`` from a From header, or the header as it is when it holds no address."""
    try:
        names = getaddresses([text])
    except (RecursionError, ValueError, IndexError):  # the stdlib parser recurses once per "(" of a comment
        return text
    if names and names[0][1]:
        return names[0][1] if not names[0][0] else f"{names[0][0]} <{names[0][1]}>"
    return text


def _message_id(value) -> str | None:
    """A Message-ID or In-Reply-To without its brackets, bounded: a 40 kB one is one ``sha256:`` id."""
    found = header_text(value).strip().strip("<>").strip()
    return bounded(found) if found else None


def message_record(raw: bytes, project: str | None, connector: str) -> Record | None:
    """One message as a record, or None when it has neither headers nor text."""
    unixfrom, _, rest = raw.partition(b"\n") if raw.startswith(b"From ") else (b"", b"", raw)
    msg = message_from_bytes(rest)
    subject, body = header_text(msg.get("Subject")), body_text(msg)
    if not msg.keys() and not body:
        return None
    native_id = _message_id(msg.get("Message-ID")) or "sha256:" + hashlib.sha256(raw).hexdigest()
    sent = parse_time(header_text(msg.get("Date")))
    if sent is None and unixfrom:
        sent = parse_time(" ".join(unixfrom.decode("latin-1").split()[-5:]))
    author = _author(_deobfuscate(header_text(msg.get("From"))))
    list_id = header_text(msg.get("List-Id"))
    if project is None:
        found = _ANGLED.search(list_id) or _LIST_PREFIX.match(subject)
        project = bounded(found.group(1)) if found else "unknown-list"
    reply_to = _message_id(msg.get("In-Reply-To"))
    archived = header_text(msg.get("Archived-At")).strip("<> ") or None
    return Record(source="mail", connector=connector, project=project, kind="mail", native_id=native_id,
                  url=archived, title=subject, body=body, author=author or None, created_at=sent,
                  updated_at=sent, labels=[], parent_id=reply_to,
                  raw={"format": "rfc822-latin1", "message": raw.decode("latin-1")})


class MailConnector(FileConnector):
    """mbox / pipermail / hyperkitty files or folders of them.  ``project`` names the list when headers do not."""

    suffixes = SUFFIXES
    unit = "message"
    hint = "give mbox files, pipermail .txt/.txt.gz archives or a folder of them"

    def __init__(self, paths: str | Path | Iterable[str | Path], kind: str = "mbox", project: str | None = None,
                 batch_size: int = 200, max_record_bytes: int | None = None):
        super().__init__(paths, batch_size, max_record_bytes)
        self.name = kind
        self.project = project

    def _units(self, stream):
        return split_mbox(stream, self.max_record_bytes)

    def _read_unit(self, name: str, number: int, raw: bytes, batch: Batch) -> None:
        if isinstance(raw, TooLarge):
            batch.skips.append(Skip(f"{name}: message {number}", f"a message of {raw:,} bytes, over the "
                                    f"{self.max_record_bytes:,}-byte limit for one record (--max-record-bytes): "
                                    "passed over unread"))
            return
        try:
            record = message_record(raw, self.project, self.name)
        except Exception as err:  # noqa: BLE001 - one broken message is counted, the archive goes on
            batch.skips.append(Skip(f"{name}: message {number}",
                                    f"cannot be parsed: {type(err).__name__}: {str(err)[:200]}"))
            return
        if record is None:
            batch.skips.append(Skip(f"{name}: message {number}", "no headers and no text"))
        else:
            batch.records.append(record)
