"""Which names and origins `seq2seq serve` answers (docs/serving.md, *Host names* and *CORS*): the
`--allow-host` and `--allow-origin` values checked, and the Host names a server bound to an address answers
(against DNS rebinding: a loopback server answers this machine's names and addresses only)."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+")  # what a browser sends: scheme://host[:port]
LOCAL_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")  # names of the loopback addresses (and any of those)
HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?|\[[0-9A-Fa-f:.]+\]")  # name, IPv4, [IPv6]
HOST_HEADER = re.compile(rf"({HOST_NAME.pattern})(?::[0-9]*)?")  # a Host header: the name, maybe a port


def check_hosts(names: Sequence[str]) -> tuple[str, ...]:
    """The `--allow-host` values, checked, as compared (`host_key`): a host name or an address as a Host header
    names it, without a port; or `*` alone (any name: no check)."""
    if "*" in names and len(names) > 1:
        raise ConfigError("--allow-host '*' answers any name: the other --allow-host names would be ignored")
    for name in names:
        if name != "*" and not HOST_NAME.fullmatch(name):
            raise ConfigError(f"--allow-host {name!r}: give a name as a browser's Host header holds it, without "
                              "the port (my-laptop.local, 192.168.1.5, [fe80::1]), or * (any name)")  # fmt: skip
    return tuple(host_key(name) for name in names)


def host_key(name: str) -> str:
    """A Host name as compared: lower case, one trailing dot dropped (`localhost.` is `localhost`), an address in
    its canonical form (`[0:0:0:0:0:0:0:1]` is `[::1]`)."""
    name = name.lower().removesuffix(".")
    bracketed = name.startswith("[") and name.endswith("]")
    try:
        address = ipaddress.ip_address(name[1:-1] if bracketed else name)
    except ValueError:
        return name
    if address.version == 6:
        return f"[{address}]" if bracketed else name  # an IPv6 address in a Host header is in brackets
    return name if bracketed else str(address)


def is_loopback(key: str) -> bool:
    """Whether a `host_key` is a loopback address: 127.0.0.0/8, [::1], [::ffff:127.0.0.1]."""
    bracketed = key.startswith("[")
    try:
        address = ipaddress.ip_address(key[1:-1] if bracketed else key)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bracketed == (address.version == 6) and (mapped or address).is_loopback


@dataclass(frozen=True)
class HostNames:
    """The Host names a server answers (`host_names`): `names` (as `host_key` gives them) and any loopback address."""

    names: frozenset[str]

    def answers(self, name: str) -> bool:
        key = host_key(name)
        return key in self.names or is_loopback(key)

    def __str__(self) -> str:
        return f"{', '.join(sorted(self.names))} and any loopback address"


def host_names(bound: str, allowed: Sequence[str]) -> HostNames | None:
    """The Host names a server bound to the address `bound` answers: None (any) on a wildcard address without
    --allow-host names (`allowed`, as `check_hosts` gives them), or with `*`; else localhost, ip6-localhost,
    ip6-loopback, this machine's name (socket.gethostname()), any loopback address, the bound address and
    `allowed`. A page whose site's name an attacker has pointed at 127.0.0.1 (DNS rebinding) sends its own
    name: refused. Names only: none is looked up."""
    address = ipaddress.ip_address(bound)
    if "*" in allowed or not (address.is_loopback or allowed):
        return None
    own = [] if address.is_unspecified else [host_key(f"[{address}]" if address.version == 6 else str(address))]
    machine = [host_key(socket.gethostname())] if HOST_NAME.fullmatch(socket.gethostname()) else []
    return HostNames(frozenset((*LOCAL_NAMES, *machine, *own, *allowed)))


def check_origins(origins: Sequence[str]) -> tuple[str, ...]:
    """The `--allow-origin` values, checked: `*`, `null` or an origin as browsers send it (no path)."""
    for origin in origins:
        if origin not in ("*", "null") and not ORIGIN.fullmatch(origin):
            raise ConfigError(f"--allow-origin {origin!r}: an origin is SCHEME://HOST[:PORT] as a browser sends it, "
                              "without a path or a trailing slash (or *: any origin)")  # fmt: skip
    return tuple(origins)
