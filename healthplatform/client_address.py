"""The address of the client a request came from: what the throttles count by and the audit and the inbox record.

``REMOTE_ADDR`` is the peer of the TCP connection. Behind the region's load balancer (or a hospital's reverse
proxy) that peer is the proxy, and the client is named in ``X-Forwarded-For``, which each proxy extends with the
address it received the request from. The header is written by whoever sent the request, so it is believed only
as far as the chain of proxies is ours: it is read at all only when ``REMOTE_ADDR`` is one of
``settings.TRUSTED_PROXIES`` (addresses or CIDR networks), then right to left, skipping the hops that are
trusted proxies too; the first hop that is not is the client (RFC 7239 §5.2 and §8.3 explain why the
left-most, client-written entries cannot be trusted). A malformed hop ends the walk at the last trusted one:
whatever stands left of it was written by someone we cannot vouch for. A direct peer (no trusted proxy) is
always ``REMOTE_ADDR``, whatever the header says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxies_parse(values: Iterable[str], *, name: str = "TRUSTED_PROXIES") -> tuple[Network, ...]:
    """The networks of a list of addresses or CIDRs (``10.0.0.5``, ``10.20.0.0/16``, ``fd00::/8``); a bad
    entry names the setting and the entry (a proxy's address is no secret)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {value!r} is not an IP address or CIDR network") from exc
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:4711" (RFC 7239 §6 node syntax)
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "192.0.2.1:4711": a port some proxies append
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket (::ffff:192.0.2.1) is the IPv4 client.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address, proxies: tuple[Network, ...]) -> bool:
    return any(address in network for network in proxies)


def client_address_of(meta: Mapping[str, str]) -> str | None:
    """The client's address from a request's ``META`` (or a copy of it, such as oauthlib's headers), or None
    when the peer is not an address at all."""
    peer = _address(meta.get("REMOTE_ADDR") or "")
    if peer is None:
        return None
    proxies = settings.TRUSTED_PROXIES
    if not proxies or not _trusted(peer, proxies):
        return str(peer)
    client = peer
    for hop in reversed((meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)


def client_address(request) -> str | None:
    """The address of the client of a Django (or DRF) request; see the module's docstring."""
    return client_address_of(request.META)
