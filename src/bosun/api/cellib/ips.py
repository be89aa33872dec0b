"""Kubernetes' CEL IP and CIDR libraries: ``ip()``, ``isIP()``, ``ip.isCanonical()``,
``cidr()``, ``isCIDR()`` and their accessors, with Go's ``net`` meanings (``isGlobalUnicast``
is Go's: any address that is not unspecified, loopback, multicast, link-local or the broadcast
address). Like upstream, an IPv4-mapped IPv6 address and a zone (``%eth0``) are refused."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from bosun.api.cellib.typed import is_kind, string, unwrap, wrap

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_LINK_LOCAL_MULTICAST = (ipaddress.ip_network("224.0.0.0/24"), ipaddress.ip_network("ff02::/16"))
_BROADCAST = ipaddress.ip_address("255.255.255.255")


def _parse_ip(text: str) -> Address:
    if "%" in text:
        raise ValueError(f"IP Address {text!r} parse error during conversion from string: "
                         "IP address with zone value is not allowed")
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        raise ValueError(f"IP Address {text!r} parse error during conversion from string: "
                         f"ParseAddr({text!r}): unable to parse IP") from exc
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise ValueError(f"IP Address {text!r} parse error during conversion from string: "
                         "IPv4-mapped IPv6 address is not allowed")
    return addr


def _parse_cidr(text: str) -> tuple[Address, int]:
    addr, slash, length = text.partition("/")
    if not slash or not length.isdigit():
        raise ValueError(f"network address parse error during conversion from string: "
                         f"netip.ParsePrefix({text!r}): no '/'")
    ip = _parse_ip(addr)
    if int(length) > ip.max_prefixlen:
        raise ValueError(f"network address parse error during conversion from string: "
                         f"netip.ParsePrefix({text!r}): bad bits after slash: {length!r}")
    return ip, int(length)


def ip(value: Any) -> dict[str, str]:
    if is_kind("cidr", value):
        return wrap("ip", str(_cidr(value)[0]))
    return wrap("ip", str(_parse_ip(string(value))))


def is_ip(value: Any) -> bool:
    try:
        _parse_ip(string(value))
    except ValueError:
        return False
    return True


def is_canonical(value: Any) -> bool:
    text = string(value)
    return str(_parse_ip(text)) == text


def _ip(value: Any) -> Address:
    return ipaddress.ip_address(unwrap("ip", value))


def family(value: Any) -> int:
    return _ip(value).version


def is_unspecified(value: Any) -> bool:
    return _ip(value).is_unspecified


def is_loopback(value: Any) -> bool:
    return _ip(value).is_loopback


def is_link_local_multicast(value: Any) -> bool:
    addr = _ip(value)
    return any(addr in net for net in _LINK_LOCAL_MULTICAST if net.version == addr.version)


def is_link_local_unicast(value: Any) -> bool:
    addr = _ip(value)
    return addr.is_link_local and not addr.is_multicast


def is_global_unicast(value: Any) -> bool:
    addr = _ip(value)
    return not (addr == _BROADCAST or addr.is_unspecified or addr.is_loopback or addr.is_multicast
                or is_link_local_unicast(value))


def cidr(value: Any) -> dict[str, str]:
    addr, length = _parse_cidr(string(value))
    return wrap("cidr", f"{addr}/{length}")


def is_cidr(value: Any) -> bool:
    try:
        _parse_cidr(string(value))
    except ValueError:
        return False
    return True


def _cidr(value: Any) -> tuple[Address, int]:
    return _parse_cidr(unwrap("cidr", value))


def _network(value: Any) -> Network:
    addr, length = _cidr(value)
    return ipaddress.ip_network(f"{addr}/{length}", strict=False)


def contains_ip(value: Any, other: Any) -> bool:
    addr = _ip(other) if is_kind("ip", other) else _parse_ip(string(other))
    net = _network(value)
    return addr.version == net.version and addr in net


def contains_cidr(value: Any, other: Any) -> bool:
    inner = _network(other) if is_kind("cidr", other) else _network(cidr(string(other)))
    net = _network(value)
    return inner.version == net.version and inner.subnet_of(net)  # type: ignore[arg-type]


def prefix_length(value: Any) -> int:
    return _cidr(value)[1]


def masked(value: Any) -> dict[str, str]:
    return wrap("cidr", str(_network(value)))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "ip": ip, "isIP": is_ip, "ip.isCanonical": is_canonical, "family": family, "isUnspecified": is_unspecified,
    "isLoopback": is_loopback, "isLinkLocalMulticast": is_link_local_multicast,
    "isLinkLocalUnicast": is_link_local_unicast, "isGlobalUnicast": is_global_unicast,
    "cidr": cidr, "isCIDR": is_cidr, "containsIP": contains_ip, "containsCIDR": contains_cidr,
    "prefixLength": prefix_length, "masked": masked,
}
