"""Sphinx configuration of the Flask-Postmark-Auth reference docs (``make docs``).

The pages are MyST Markdown, so they read on GitHub as well; the API pages are autodoc,
the CLI page sphinx-click, and the configuration table comes from the settings table in
the code (``_ext/settings_table.py``). Nothing is fetched from the network: no intersphinx.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the package, when the docs build from a bare checkout

from flask_postmark_auth import __version__  # noqa: E402

project = "Flask-Postmark-Auth"
author = "Flask-Postmark-Auth contributors"
copyright = "Flask-Postmark-Auth contributors"
release = __version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinx_click",
    "settings_table",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "screenshots", "Thumbs.db", ".DS_Store"]

# MyST: ``{directive}`` fences, ``:::`` fences, <img> tags as images (the screenshots keep
# their width on GitHub too) and anchors for headings down to ###, so
# ``[text](page.md#heading)`` links work on GitHub and in the built site alike.
myst_enable_extensions = ["colon_fence", "deflist", "html_image"]
myst_heading_anchors = 3

# autodoc: members in source order, signatures with their types, no network look-ups.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}

# Curly quotes and ellipses, but no dashes: ``--send-to`` must stay two hyphens.
smartquotes_action = "qe"

html_theme = "furo"
html_title = f"Flask-Postmark-Auth {release}"
html_static_path: list[str] = []
