"""The ``settings-table`` directive: every configuration key, straight from the code.

It renders one row per field of :class:`flask_postmark_auth.settings.Settings`, the
package's one settings table, in its order: the key (``POSTMARK_AUTH_`` and the field's
name in upper case), its default (``field.metadata["default"]``) and its meaning
(``field.metadata["doc"]``). Nothing in the docs repeats a key, so the page cannot drift
from the code: a key added, renamed or re-documented there shows up at the next build.

Usage, in a MyST page::

    ```{settings-table}
    ```
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx

# PREFIX: what every key starts with ("POSTMARK_AUTH_"), the settings module's own.
from flask_postmark_auth.settings import PREFIX, Settings

#: `code` spans inside a doc line (the doc lines use Markdown-style single backticks).
_CODE = re.compile(r"`([^`]+)`")


def key_of(field: dataclasses.Field[Any]) -> str:
    """``POSTMARK_AUTH_`` and the field's name in upper case."""
    return f"{PREFIX}{field.name.upper()}"


def default_of(field: dataclasses.Field[Any]) -> str:
    """The default as Python would spell it (lists, dicts, strings, ``None``)."""
    return repr(field.metadata["default"])


def _text(value: str) -> list[nodes.Node]:
    """A doc line as inline nodes: its `code` spans become literals, the rest plain text."""
    out: list[nodes.Node] = []
    last = 0
    for match in _CODE.finditer(value):
        if match.start() > last:
            out.append(nodes.Text(value[last : match.start()]))
        out.append(nodes.literal(match.group(1), match.group(1)))
        last = match.end()
    if last < len(value):
        out.append(nodes.Text(value[last:]))
    return out


def _cell(*children: nodes.Node) -> nodes.entry:
    entry = nodes.entry()
    entry += nodes.paragraph("", "", *children)
    return entry


class SettingsTable(Directive):
    """``settings-table``: a table of every field of ``Settings``, no arguments."""

    has_content = False
    required_arguments = 0
    optional_arguments = 0

    def run(self) -> list[nodes.Node]:
        # Rebuild the page whenever the settings table changes.
        env = self.state.document.settings.env
        env.note_dependency(inspect.getfile(Settings))
        rows = dataclasses.fields(Settings)
        table = nodes.table(classes=["settings-table"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (30, 25, 45):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        header = nodes.row()
        for title in ("key", "default", "meaning"):
            header += _cell(nodes.Text(title))
        head += header
        body = nodes.tbody()
        group += body
        for field in rows:
            row = nodes.row(ids=[nodes.make_id(key_of(field))])
            key = key_of(field)
            default = default_of(field)
            row += _cell(nodes.literal(key, key))
            row += _cell(nodes.literal(default, default))
            row += _cell(*_text(str(field.metadata["doc"])))
            body += row
        return [table]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("settings-table", SettingsTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
