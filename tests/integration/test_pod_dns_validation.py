"""Bad dnsPolicy/dnsConfig is refused with 422 naming the field, as Kubernetes refuses it
(what the node would otherwise write into the pod's resolv.conf)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.integration.helpers import temporary_namespace

from bosun.client.errors import ApiError
from bosun.client.rest import Client
from bosun.controllers._common import resource

PODS = resource("", "v1", "pods")


@pytest.fixture
async def ns(client: Client) -> AsyncIterator[str]:
    async with temporary_namespace(client, "dnsval") as name:
        yield name


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "host"}], **spec}}


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"dnsPolicy": "None"}, "spec.dnsConfig", "when `dnsPolicy` is None"),
    ({"dnsPolicy": "None", "dnsConfig": {"searches": ["a.example"]}}, "spec.dnsConfig.nameservers",
     "at least one DNS nameserver"),
    ({"dnsConfig": {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9"]}}, "spec.dnsConfig.nameservers",
     "more than 3 nameservers"),
    ({"dnsConfig": {"nameservers": ["dns.example"]}}, "spec.dnsConfig.nameservers[0]", "valid IP address"),
    ({"dnsConfig": {"searches": ["Bad_Domain"]}}, "spec.dnsConfig.searches[0]", "RFC 1123 subdomain"),
    ({"dnsConfig": {"searches": [f"s{i}.example" for i in range(33)]}}, "spec.dnsConfig.searches",
     "more than 32 search paths"),
    ({"dnsConfig": {"searches": ["x" * 60 + f".s{i}.example" for i in range(31)]}}, "spec.dnsConfig.searches",
     "2048 characters"),
    ({"dnsConfig": {"options": [{"value": "2"}]}}, "spec.dnsConfig.options[0]", "must not be empty"),
    ({"dnsPolicy": "Sometimes"}, "spec.dnsPolicy", "Unsupported value"),
])
async def test_bad_dns_settings_are_refused(client: Client, ns: str, spec: dict[str, Any], field: str,
                                            words: str) -> None:
    with pytest.raises(ApiError) as e:
        await client.create(PODS, pod(**spec), ns)
    assert e.value.status == 422, e.value.message
    assert field in e.value.message and words in e.value.message, e.value.message


async def test_good_dns_settings_are_accepted(client: Client, ns: str) -> None:
    created = await client.create(PODS, pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["10.96.0.10"], "searches": ["shop.svc.cluster.local."],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}), ns)
    assert created["spec"]["dnsConfig"]["nameservers"] == ["10.96.0.10"]
