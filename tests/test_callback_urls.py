"""The SSRF policy for callback URLs, on its own and at submission through the real API.

(Refusal at delivery time, by the running delivery worker, is in ``test_delivery.py``.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from jobs.callback_urls import CallbackHostUnresolved, CallbackUrlPolicy
from jobs.errors import CallbackUrlRefused
from webhook_api.main import create_app
from webhook_api.settings import ApiSettings

API_KEY = "key-of-acme-for-ssrf-tests-0123"

#: (URL, words the refusal must name): one case per class of address, IPv4 and IPv6.
REFUSED = [
    ("ftp://example.com/hooks", "scheme ftp not allowed"),
    ("file:///etc/passwd", "scheme file not allowed"),
    ("gopher://127.0.0.1:25/", "scheme gopher not allowed"),
    ("http:///no-host", "no host"),
    ("http://127.0.0.1:8080/hooks", "loopback address 127.0.0.1"),
    ("http://127.8.9.10/hooks", "loopback address 127.8.9.10"),
    ("http://[::1]:8080/hooks", "loopback address ::1"),
    ("http://localhost:8080/hooks", "host localhost resolves to loopback address 127.0.0.1"),
    ("http://2130706433/hooks", "resolves to loopback address 127.0.0.1"),
    ("http://[::ffff:127.0.0.1]/hooks", "loopback address 127.0.0.1 (IPv4-mapped"),
    ("http://[::ffff:10.1.2.3]/hooks", "private address 10.1.2.3 (IPv4-mapped"),
    ("http://10.0.0.1/hooks", "private address 10.0.0.1"),
    ("http://172.16.5.4/hooks", "private address 172.16.5.4"),
    ("http://192.168.1.1/hooks", "private address 192.168.1.1"),
    ("http://100.64.0.1/hooks", "private address 100.64.0.1"),
    ("http://[fd12:3456::1]/hooks", "private address fd12:3456::1"),
    ("http://[64:ff9b::a00:1]/hooks", "private address 10.0.0.1 (NAT64"),
    ("http://[2002:c0a8:101::1]/hooks", "private address 192.168.1.1 (6to4"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata address 169.254.169.254"),
    ("http://169.254.170.2/v2/credentials", "cloud metadata address 169.254.170.2"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata address fd00:ec2::254"),
    ("http://100.100.100.200/latest/meta-data/", "cloud metadata address 100.100.100.200"),
    ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata host metadata.google.internal"),
    ("http://169.254.1.1/hooks", "link-local address 169.254.1.1"),
    ("http://[fe80::1]/hooks", "link-local address fe80::1"),
    ("http://224.0.0.1/hooks", "multicast address 224.0.0.1"),
    ("http://[ff02::1]/hooks", "multicast address ff02::1"),
    ("http://240.0.0.1/hooks", "reserved address 240.0.0.1"),
    ("http://255.255.255.255/hooks", "reserved address 255.255.255.255"),
    ("http://0.0.0.0:8080/hooks", "unspecified address 0.0.0.0"),
    ("http://0.1.2.3/hooks", "unspecified address 0.1.2.3"),
    ("http://[::]:8080/hooks", "unspecified address ::"),
    ("http://192.0.2.10/hooks", "non-public special-purpose address 192.0.2.10"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_policy_refuses_naming_the_class_when_url_targets_a_forbidden_address(url: str, reason: str) -> None:
    with pytest.raises(CallbackUrlRefused) as refused:
        CallbackUrlPolicy([]).check(url)
    assert reason in refused.value.reason


@pytest.mark.parametrize("url", ["http://8.8.8.8/hooks", "https://[2606:4700:4700::1111]:8443/x?y=1", "http://1.1.1.1"])
def test_policy_accepts_when_url_targets_a_public_address(url: str) -> None:
    resolved = CallbackUrlPolicy([]).check(url)
    assert resolved.address.is_global


def test_policy_pins_the_checked_address_when_https_host_is_a_name() -> None:
    # Given: an allow-listed name (resolved through /etc/hosts, no DNS server needed)
    policy = CallbackUrlPolicy(["localhost"])

    # When
    resolved = policy.check("https://LOCALHOST:8443/hooks/mt?project=x")

    # Then: connect to the IP that was checked, but speak to the name (Host header, SNI, certificate check)
    assert str(resolved.address) == "127.0.0.1"
    assert resolved.request_url == "https://127.0.0.1:8443/hooks/mt?project=x"
    assert resolved.host_header == "localhost:8443"
    assert resolved.tls_server_name == "localhost"


def test_policy_accepts_when_address_is_in_an_allowlisted_network() -> None:
    policy = CallbackUrlPolicy(["10.20.0.0/16", "fd00:1::/64"])

    assert str(policy.check("http://10.20.3.4:9000/hooks").address) == "10.20.3.4"
    assert str(policy.check("http://[fd00:1::5]/hooks").address) == "fd00:1::5"
    with pytest.raises(CallbackUrlRefused, match=r"private address 10\.21\.0\.1"):
        policy.check("http://10.21.0.1/hooks")


def test_policy_accepts_ipv4_mapped_form_when_ipv4_address_is_allowlisted() -> None:
    resolved = CallbackUrlPolicy(["127.0.0.1"]).check("http://[::ffff:127.0.0.1]:9000/hooks")
    assert resolved.request_url == "http://127.0.0.1:9000/hooks"


def test_policy_refuses_metadata_address_when_only_the_hostname_is_allowlisted() -> None:
    # A trusted *name* does not extend to the metadata service if its DNS answer ever points there.
    policy = CallbackUrlPolicy(["169.254.169.254.example"])
    with pytest.raises(CallbackUrlRefused, match="cloud metadata"):
        policy.check("http://169.254.169.254/latest")


def test_policy_raises_unresolved_when_host_has_no_address() -> None:
    with pytest.raises(CallbackHostUnresolved, match="does not resolve"):
        CallbackUrlPolicy([]).check(f"https://{uuid.uuid4().hex}.invalid/hooks")


# -- at submission, through the API ------------------------------------------------------------------------------
@pytest.fixture
def api(broker_url: str, sqlite_url: str) -> Iterator[TestClient]:
    settings = ApiSettings(
        broker_url=broker_url,
        store_url=sqlite_url,
        queue_prefix=f"ssrf{uuid.uuid4().hex[:8]}",
        api_keys=[f"acme:{API_KEY}"],
        pairs=["en-fr"],
        callback_allowlist=[],
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_submit_answers_422_naming_the_reason_when_callback_url_is_forbidden(
    api: TestClient, url: str, reason: str
) -> None:
    # When
    answer = api.post(
        "/v1/jobs",
        json={"source_lang": "en", "target_lang": "fr", "segments": ["Hello."], "callback_url": url},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )

    # Then
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["field"] == "callback_url"
    assert body["code"] == "callback_url_refused"
    assert reason in body["message"]
