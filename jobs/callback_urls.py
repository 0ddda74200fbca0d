"""The SSRF policy for callback URLs (OWASP's webhook case), one policy for both sides.

The API checks a ``callback_url`` at submission and answers ``422`` naming the reason; the delivery worker
checks it again right before each attempt and connects to the address it checked
(:meth:`ResolvedCallback.request_url` plus the original ``Host`` header and TLS server name), so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot reach an internal address.

Refused: schemes other than http/https; hosts that resolve to a loopback, private (RFC 1918, RFC 4193,
shared 100.64/10), link-local, multicast, reserved, unspecified or cloud-metadata address, or any other
address that is not globally routable — IPv4 and IPv6 alike, including IPv4 addresses embedded in IPv6
(IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``). A host is refused when *any*
of its addresses is refused.

The allow-list (``BT_CALLBACK_ALLOWLIST``) names trusted internal receivers: hostnames (exact,
case-insensitive), IP addresses or CIDR networks. A listed hostname trusts whatever it resolves to except
cloud-metadata addresses; a listed address or network trusts itself, whatever name leads to it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from jobs.errors import CallbackUrlRefused

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Schemes a callback may use, with their default ports.
DEFAULT_PORTS = {"http": 80, "https": 443}

#: Instance-metadata endpoints of the big clouds (AWS, GCP, Azure, OpenStack, DigitalOcean: 169.254.169.254;
#: AWS ECS/EKS task credentials; AWS IPv6; Alibaba; Oracle).
CLOUD_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "100.100.100.200",
        "192.0.0.192",
    )
)
#: Hostnames of metadata services, refused even where they do not resolve (e.g. outside that cloud).
CLOUD_METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class CallbackHostUnresolved(CallbackUrlRefused):
    """The callback host has no address right now (at delivery time a retry may succeed)."""


@dataclass(frozen=True)
class ResolvedCallback:
    """A callback URL that passed the policy, with the addresses that were checked."""

    url: str
    scheme: str
    host: str  #: as written in the URL, lower-case, without IPv6 brackets
    port: int
    addresses: tuple[IPAddress, ...]  #: every address ``host`` resolved to; all were checked

    @property
    def address(self) -> IPAddress:
        """The checked address to connect to (an IPv4-mapped IPv6 address as the IPv4 address it is)."""
        return _comparable(self.addresses[0])

    @property
    def host_is_ip(self) -> bool:
        return _is_literal(self.host)

    @property
    def request_url(self) -> str:
        """The URL with the checked address in place of the host: what the HTTP client connects to."""
        parts = urlsplit(self.url)
        address = self.address
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = literal if self.port == DEFAULT_PORTS[self.scheme] else f"{literal}:{self.port}"
        return urlunsplit((self.scheme, netloc, parts.path or "/", parts.query, ""))

    @property
    def host_header(self) -> str:
        """The ``Host`` header the receiver expects (the URL's host, and its port when not the default)."""
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == DEFAULT_PORTS[self.scheme] else f"{name}:{self.port}"

    @property
    def tls_server_name(self) -> str | None:
        """Server name for TLS SNI and certificate verification (https to a hostname), else None."""
        return self.host if self.scheme == "https" and not self.host_is_ip else None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), with the carrier's name."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not receive callbacks (naming the class), or None if it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            carrier, v4 = embedded
            inner = refusal_reason(v4)
            return f"{inner} ({carrier} {address})" if inner else None
        if address.scope_id:
            return f"link-local address {address}"
    if address.is_unspecified or address in _THIS_NETWORK:
        return f"unspecified address {address}"
    if address.is_loopback:
        return f"loopback address {address}"
    if address in CLOUD_METADATA_ADDRESSES:
        return f"cloud metadata address {address}"
    if address.is_link_local:
        return f"link-local address {address}"
    if address.is_multicast:
        return f"multicast address {address}"
    if any(address in network for network in _PRIVATE_NETWORKS if network.version == address.version):
        return f"private address {address}"
    if address.is_reserved:
        return f"reserved address {address}"
    if address.is_private or not address.is_global:
        return f"non-public special-purpose address {address}"
    return None


def _comparable(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 compared as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class CallbackUrlPolicy:
    """Decides whether a callback URL may be called, and which address to call it on."""

    def __init__(self, allowlist: Sequence[str] = ()) -> None:
        self.allowed_hosts: frozenset[str] = frozenset()
        self.allowed_networks: tuple[IPNetwork, ...] = ()
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (item.strip() for item in allowlist):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        self.allowed_hosts = frozenset(hosts)
        self.allowed_networks = tuple(networks)

    def check(self, url: str) -> ResolvedCallback:
        """Resolve ``url``'s host, check every address; raise :class:`CallbackUrlRefused` naming the reason.

        A host that does not resolve raises :class:`CallbackHostUnresolved` (a subclass).
        """
        parts = self._split(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError as exc:
            raise CallbackUrlRefused(url, "invalid port") from exc
        host_allowed = host in self.allowed_hosts
        if host in CLOUD_METADATA_HOSTS and not host_allowed:
            raise CallbackUrlRefused(url, f"cloud metadata host {host}")
        addresses = self._resolve(url, host, port)
        for address in addresses:
            reason = refusal_reason(address)
            if reason is None or self._address_allowed(address):
                continue
            if host_allowed and address not in CLOUD_METADATA_ADDRESSES:
                continue
            if not _is_literal(host):
                reason = f"host {host} resolves to {reason}"
            raise CallbackUrlRefused(url, reason)
        return ResolvedCallback(url=url, scheme=scheme, host=host, port=port, addresses=addresses)

    def _address_allowed(self, address: IPAddress) -> bool:
        candidate = _comparable(address)
        return any(candidate in network for network in self.allowed_networks if network.version == candidate.version)

    @staticmethod
    def _split(url: str) -> SplitResult:
        try:
            parts = urlsplit(url.strip())
        except ValueError as exc:
            raise CallbackUrlRefused(url, f"not a valid URL ({exc})") from exc
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            shown = scheme or "(none)"
            raise CallbackUrlRefused(url, f"scheme {shown} not allowed (use http or https)")
        if not parts.hostname:
            raise CallbackUrlRefused(url, "URL has no host")
        return parts

    @staticmethod
    def _resolve(url: str, host: str, port: int) -> tuple[IPAddress, ...]:
        try:
            return (ipaddress.ip_address(host),)
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise CallbackHostUnresolved(url, f"host {host} does not resolve ({exc})") from exc
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]))
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise CallbackHostUnresolved(url, f"host {host} has no address")
        return tuple(addresses)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
