"""An alert as an e-mail: subject and HTML body from the same parts as the Slack text (pure, no I/O).

The SMTP provider's notifier sends HTML only (``MIMEText(html, "html")``), so the body is small,
plain HTML: the title, the body lines (``•`` items as a list), what was done, what a person may do,
and the links. Every part is escaped; `` `code` `` spans become ``<code>``. Nothing here is rendered
as a Jinja template (text from data may hold ``{{``): the notifier is called with ``notify()``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from autoretrain.alerts.messages import LINK_LABELS, Alert

SUBJECT_PREFIX = "AutoRetrain"
#: an e-mail subject longer than this is cut (RFC 5322 recommends 78 characters per header line)
MAX_SUBJECT_CHARS = 150
_CODE = re.compile(r"`([^`]+)`")


def email_subject(alert: Alert) -> str:
    """``[AutoRetrain critical] Task failed: training.register`` (one line, at most 150 characters)."""
    subject = " ".join(f"[{SUBJECT_PREFIX} {alert.severity}] {alert.title}".split())
    return subject if len(subject) <= MAX_SUBJECT_CHARS else subject[: MAX_SUBJECT_CHARS - 1] + "…"


def email_html(alert: Alert) -> str:
    """The HTML body: one line per part, so the message received can be compared as it is."""
    lines = [f"<p><strong>{_inline(alert.title)}</strong></p>"]
    lines += _body(alert.body if alert.body else alert.text.splitlines()[1:])
    if alert.done:
        lines.append(f"<p><strong>Done:</strong> {_inline(alert.done)}</p>")
    if alert.todo:
        lines.append(f"<p><strong>You can:</strong> {_inline(alert.todo)}</p>")
    targets = [*alert.links, *([("log", alert.log_url)] if alert.log_url else [])]
    if targets:
        anchors = " · ".join(f'<a href="{html.escape(url, quote=True)}">{LINK_LABELS.get(name, name)}</a>'
                             for name, url in targets)
        lines.append(f"<p>{anchors}</p>")
    return "\n".join(lines)


def _body(body: Sequence[str]) -> list[str]:
    """Plain lines as paragraphs, runs of ``•`` items as one list."""
    out: list[str] = []
    items: list[str] = []
    for line in body:
        if line.startswith("• "):
            items.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if items:
            out += ["<ul>", *items, "</ul>"]
            items = []
        out.append(f"<p>{_inline(line)}</p>")
    if items:
        out += ["<ul>", *items, "</ul>"]
    return out


def _inline(text: str) -> str:
    return _CODE.sub(r"<code>\1</code>", html.escape(text, quote=False))
