"""What the throttles count by: one bucket per person, not per spelling of an address, and
one per network, not per IPv6 address."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

HOUR = 3600
DAY = 24 * HOUR
#: IPv6 clients are counted by network: one customer is routinely given a whole /64.
IPV6_PREFIX = 64


def mailbox_key(address: str) -> str:
    """The mailbox a normalized address delivers to, for throttling only: a ``+tag`` in the
    local part is dropped, so ``ann+1@x`` and ``ann+2@x`` share ``ann@x``'s quota."""
    local, _, domain = address.rpartition("@")
    base = local.split("+", 1)[0]
    return f"{base or local}@{domain}"


@lru_cache(maxsize=4096)
def ip_bucket(ip: str) -> str:
    """The bucket a client address counts in: an IPv4 address alone (IPv4-mapped IPv6
    included), an IPv6 address by its /64; anything unparsable as itself."""
    try:
        parsed = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        network = ipaddress.IPv6Network(f"{parsed}/{IPV6_PREFIX}", strict=False)
        return str(network)
    return str(parsed)
