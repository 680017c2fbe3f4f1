"""Postmark's address rules: ``addr@domain`` or ``Name <addr@domain>``, comma separated, and
the ErrorCode 300 texts for an address Postmark would not take."""

from __future__ import annotations

import re

_MAILBOX = re.compile(
    r'(?:(?P<name>"(?:[^"\\]|\\.)*"|[^"<>]*?)\s*<(?P<angle>[^<>\s]*)>|(?P<bare>[^\s<>"]+))'
)
_LOCAL = re.compile(r"[\w!#$%&'*+/=?^`{|}~.-]+")
_LABEL = re.compile(r"[^\W_](?:[\w-]{0,61}[^\W_])?")
_TLD = re.compile(r"[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59}", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _split_addresses(value: str) -> list[str]:
    """Split on the commas that are outside quotes and angle brackets."""
    parts: list[str] = []
    current: list[str] = []
    quoted = angle = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"' and not angle:
            quoted = not quoted
        elif char == "<" and not quoted:
            angle = True
        elif char == ">" and not quoted:
            angle = False
        elif char == "," and not quoted and not angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _valid_addr_spec(addr: str) -> bool:
    local, at, domain = addr.rpartition("@")
    if not at or not local or len(local) > 64 or len(addr) > 254:
        return False
    if not _LOCAL.fullmatch(local) or local.startswith(".") or local.endswith("."):
        return False
    if ".." in local:
        return False
    labels = domain.split(".")
    if len(labels) < 2 or not _TLD.fullmatch(labels[-1]):
        return False
    return all(_LABEL.fullmatch(label) for label in labels)


def _mailbox_address(part: str) -> str | None:
    """The address of one ``addr`` or ``Name <addr>`` entry, or None if it does not parse."""
    match = _MAILBOX.fullmatch(part)
    if match is None:
        return None
    addr = match.group("angle") if match.group("bare") is None else match.group("bare")
    return addr if addr and _valid_addr_spec(addr) else None


def _address_problem(field_name: str, part: str) -> str:
    match = _MAILBOX.fullmatch(part)
    addr = part
    if match is not None:
        addr = match.group("bare") or match.group("angle") or part
    if "@" not in addr:
        return (
            f"Error parsing '{field_name}': Illegal email address '{addr}'. "
            "It must contain the '@' symbol."
        )
    return f"Invalid '{field_name}' address: '{part}'."


def parse_addresses(field_name: str, value: str) -> tuple[list[str], str | None]:
    """The addresses of a comma-separated list, or the 300 message for the first bad one."""
    if _CONTROL.search(value):
        return [], f"Invalid '{field_name}' address: '{value}'."
    parts = [p for p in _split_addresses(value) if p]
    if not parts:
        return [], f"Invalid '{field_name}' address: '{value}'."
    addresses: list[str] = []
    for part in parts:
        addr = _mailbox_address(part)
        if addr is None:
            return [], _address_problem(field_name, part)
        addresses.append(addr)
    return addresses, None
