"""The message catalogs: ``python -m support.catalogs extract`` reads every marked message
from the package's source (Babel's extractors, with ``babel.cfg``) into the template
(``flask_postmark_auth.pot``) and merges it into each locale's ``.po`` (new messages empty,
gone ones dropped); ``compile`` writes the ``.mo`` files. The tests use :func:`extracted`
and :func:`problems` to check that every catalog matches the source."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "flask_postmark_auth"
TRANSLATIONS = PACKAGE / "translations"
DOMAIN = "flask_postmark_auth"
TEMPLATE = TRANSLATIONS / f"{DOMAIN}.pot"
#: The locales the package ships.
LOCALES = ("en", "de", "fr", "es", "pt_BR", "ja", "ar")
#: Marking functions: ``N_`` and gettext's in Python, ``_pa``/``_pa_n`` in templates.
KEYWORDS = {
    "N_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "_pa": None,
    "_pa_n": (1, 2),
}
PROJECT = "Flask-Postmark-Auth"


def extracted() -> Catalog:
    """Every message marked in the package's source, as a template catalog."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)  # type: ignore[no-untyped-call]
    catalog = Catalog(project=PROJECT, domain=DOMAIN, fuzzy=False)
    found = extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
    )
    for _path, _line, message, comments, context in found:
        catalog.add(message, None, auto_comments=comments, context=context)
    return catalog


def po_path(locale: str) -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(locale: str) -> Catalog:
    with po_path(locale).open("rb") as source:
        return read_po(source, locale=locale, domain=DOMAIN)


def write(path: Path, catalog: Catalog) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as target:
        write_po(target, catalog, width=96, sort_output=True, omit_header=False, no_location=True)


def extract() -> None:
    """Write the template and merge it into every locale's catalog. English is the source
    language: its catalog says each message as the source does, for an app to copy."""
    write(TEMPLATE, extracted())
    for locale in LOCALES:
        catalog = read(locale) if po_path(locale).exists() else new_catalog(locale)
        # A template of its own: Babel puts the template's message objects in the catalog.
        catalog.update(extracted(), no_fuzzy_matching=True, update_header_comment=False)
        catalog.obsolete.clear()
        if locale == "en":
            for message in catalog:
                if message.id:
                    message.string = message.id
        write(po_path(locale), catalog)


def new_catalog(locale: str) -> Catalog:
    catalog = Catalog(
        locale=locale,
        project=PROJECT,
        domain=DOMAIN,
        fuzzy=False,
        copyright_holder="the Flask-Postmark-Auth authors",
        msgid_bugs_address="the project's issue tracker",
        last_translator="the Flask-Postmark-Auth authors",
        language_team=f"{locale} (Flask-Postmark-Auth)",
    )
    catalog.header_comment = (
        f"# {catalog.locale_identifier} messages of Flask-Postmark-Auth (domain {DOMAIN}).\n"
        "# Distributed under the project's MIT license. Run `make translations` after\n"
        "# changing a message in the source; see the README on adding a locale."
    )
    return catalog


def compile_all() -> None:
    for locale in LOCALES:
        catalog = read(locale)
        with po_path(locale).with_suffix(".mo").open("wb") as target:
            write_mo(target, catalog, use_fuzzy=False)


def problems(locale: str) -> Iterator[str]:
    """What is wrong with a locale's catalog, against the source: a message missing, one
    no longer in the source, one untranslated or fuzzy, a plural form missing, a placeholder
    that differs from the source's, and what Babel's own checks find."""
    source = {ids(message)[0]: message for message in extracted() if message.id}
    catalog = read(locale)
    mine = {ids(message)[0]: message for message in catalog if message.id}
    for missing in sorted(set(source) - set(mine)):
        yield f"{locale}: missing {missing!r}"
    for stale in sorted(set(mine) - set(source)):
        yield f"{locale}: no longer in the source {stale!r}"
    for key, message in sorted(mine.items()):
        translated = strings(message)
        plural = len(ids(message)) > 1
        if message.fuzzy:
            yield f"{locale}: fuzzy {key!r}"
        if plural and len(translated) != catalog.num_plurals:
            yield f"{locale}: {key!r} has {len(translated)} of {catalog.num_plurals} plural forms"
        if not all(translated):
            yield f"{locale}: untranslated {key!r}"
        for error in message.check(catalog):
            yield f"{locale}: {key!r}: {error}"
        wanted = placeholders(key)
        for string in translated:
            found = placeholders(string)
            if string and found != wanted and not (plural and found <= wanted):
                yield f"{locale}: {key!r} has placeholders {found}, not {wanted}"


def ids(message: Message) -> tuple[str, ...]:
    """A message's id, and its plural id if it has one."""
    return (message.id,) if isinstance(message.id, str) else tuple(message.id)


def strings(message: Message) -> tuple[str, ...]:
    """A message's translation, or each of its plural forms."""
    if isinstance(message.string, str) or message.string is None:
        return (message.string or "",)
    return tuple(message.string)


def placeholders(text: str) -> set[str]:
    """``%(name)s`` and ``{{ name }}`` placeholders of a message."""
    return set(re.findall(r"%\(\w+\)[sd]|\{\{ *\w+ *\}\}", text))


def main(argv: list[str]) -> int:
    if argv == ["extract"]:
        extract()
        return 0
    if argv == ["compile"]:
        compile_all()
        return 0
    if argv == ["check"]:
        found = [problem for locale in LOCALES for problem in problems(locale)]
        print("\n".join(found) or f"{len(LOCALES)} catalogs match the source.")
        return 1 if found else 0
    print("usage: python -m support.catalogs extract|compile|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
