"""Make text written by strangers inert wherever a reader sees it: a browser, a Markdown viewer, a spreadsheet or
a terminal.  Ingested titles, bodies, URLs, project names and advisory ids are data; these functions make sure
that no renderer takes them for markup, a link target, a formula or a terminal command.

Each rule is small and specific to its reader, so they are written out here (the standard library escapes HTML,
nothing else): one place to review, one set of tests (tests/test_security_reports.py, test_security_browser.py).
"""

from __future__ import annotations

import html as _html
import re
from urllib.parse import quote, urlsplit

LINK_SCHEMES = ("http", "https")

# Terminal escape sequences are removed whole (else their tails such as "[31m" or "0;title" stay behind): CSI
# (ESC [, parameters, a final byte), OSC/DCS/SOS/PM/APC strings (up to BEL or ST, or to the end when
# unterminated), then any other ESC pair.  8-bit C1 introducers are simply replaced below: what follows one is text.
_SEQUENCES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]?|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -~]?")
# C0 and C1 controls and DEL, plus the bidirectional embeddings, overrides and isolates that can make a line
# display in a different order than it reads ("Trojan Source", CVE-2021-42574).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_KEEP_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Characters with a meaning inside a line of Markdown (CommonMark and GitHub's tables, strikethrough and math);
# ( ) ! only matter after a ] and # + - only at the start of a line, which escaped text never provides.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A spreadsheet that splits a .csv on ';' (many locales) or a tab starts a new cell there, quotes or not.
_SPLIT_FORMULA = re.compile(r"""([;\t][\s"']*)(?=[=+\-@])""")
_C0_AND_SPACE = "".join(map(chr, range(0x21)))


def plain(text, keep_newlines: bool = False) -> str:
    """``text`` without terminal escape sequences, control characters or bidi overrides (each control becomes a
    space, so words stay apart).  ``keep_newlines`` keeps line breaks for multi-line output."""
    text = _SEQUENCES.sub("", str(text))
    pattern = _CONTROLS_KEEP_NEWLINE if keep_newlines else _CONTROLS
    return pattern.sub(" ", text.replace("\r\n", "\n") if keep_newlines else text)


def one_line(text) -> str:
    """``plain`` with every run of whitespace made one space: for a table cell or a line of a report."""
    return " ".join(plain(text).split())


def safe_url(url) -> str | None:
    """An ``http``/``https`` URL to link to, or None for anything else (``javascript:``, ``data:``, relative, no
    host).  Normalised as a browser would first (tabs and newlines inside are dropped, so ``java\\tscript:`` is
    ``javascript:``), then characters that could end an attribute, a Markdown link or an autolink are
    percent-encoded, so the result is safe inside quotes, ``<...>`` and ``[...](...)``."""
    if not isinstance(url, str):
        return None
    # The WHATWG URL parser removes tab/LF/CR anywhere and C0 controls and spaces at both ends; anything else
    # odd (a control inside, a C1 control) is not a URL worth linking to.
    url = re.sub("[\t\n\r]", "", url).strip(_C0_AND_SPACE)
    if not url or _CONTROLS.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in LINK_SCHEMES or not parts.hostname:
        return None
    return quote(url, safe="/:?#[]@!$&*+,;=%~-._")


def html_text(text) -> str:
    """One line of text as HTML: controls removed, ``& < > " '`` escaped (safe in an element and in quotes)."""
    return _html.escape(one_line(text), quote=True)


def html_link(text, url) -> str:
    """``text`` as a link to ``url`` when it is http(s); else the text with the URL shown as inert text."""
    target = safe_url(url)
    if target:
        return f'<a href="{_html.escape(target, quote=True)}" rel="noopener noreferrer nofollow">{html_text(text)}</a>'
    return html_text(text) + (f" <code>{html_text(url)}</code>" if url else "")


def md_text(text) -> str:
    """One line of text for a Markdown paragraph or table cell: Markdown punctuation backslash-escaped, and
    ``& < >`` as entities (every renderer honours those; not every one honours ``\\<``), so no raw HTML, link,
    image, emphasis or table cell boundary can come out of it."""
    escaped = _MD_SPECIAL.sub(r"\\\1", one_line(text))
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_link(text, url) -> str:
    """``[text](url)`` when ``url`` is http(s); else the text with the URL shown as inert text."""
    target = safe_url(url)
    if target:
        return f"[{md_text(text)}]({target})"
    return md_text(text) + (f" ({md_text(url)})" if url else "")


def csv_cell(value):
    """A spreadsheet opens a cell that starts with ``= + - @``, a tab or a carriage return as a formula (which can
    run commands or send data away): such text gets a leading ``'``, which spreadsheets show as text (OWASP's
    advice), and so does what follows a ``;`` or a tab inside it, where a spreadsheet splitting on those starts a
    new cell.  Numbers and empty cells are kept as they are."""
    if not isinstance(value, str):
        return value
    value = _SPLIT_FORMULA.sub(r"\1'", value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def sarif_text(text) -> str:
    """Text for a SARIF ``message.text``: plain, one line, with ``[`` ``]`` and ``\\`` escaped, since viewers turn
    ``[text](target)`` in a plain-text message into a link (SARIF 2.1.0, 3.11.6)."""
    return re.sub(r"([\\\[\]])", r"\\\1", one_line(text))
