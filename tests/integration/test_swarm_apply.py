"""Create-or-update of a stack's objects (bosun.swarm.apply) against the real API server: the
create-first path a new stack takes ends the same as the read-first one, also when the object
turns out to exist already."""

from __future__ import annotations

from typing import Any

from bosun.api.kinds import must_by_plural
from bosun.client.rest import ApiError, Client
from bosun.swarm.apply import apply_object

NAMESPACES = must_by_plural("", "v1", "namespaces")
CONFIGMAPS = must_by_plural("", "v1", "configmaps")


def config_map(namespace: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
            "data": {"level": value}}


async def test_new_objects_are_created_and_existing_ones_applied(client: Client, namespace: str) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    try:
        assert await apply_object(client, config_map(namespace, "1"), new=True) == "created"
        live = await client.get(CONFIGMAPS, "settings", namespace)
        assert live["data"] == {"level": "1"}
        assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]
        # Expected new, but there already: applied (three-way) as without the hint.
        assert await apply_object(client, config_map(namespace, "1"), new=True) == "unchanged"
        assert await apply_object(client, config_map(namespace, "2"), new=True) == "updated"
        assert (await client.get(CONFIGMAPS, "settings", namespace))["data"] == {"level": "2"}
        # Other refusals of the create are not taken for "exists already".
        bad = config_map(namespace, "3")
        bad["metadata"]["name"] = "Not_A_Name"
        try:
            await apply_object(client, bad, new=True)
        except ApiError as e:
            assert e.status == 422, e
        else:
            raise AssertionError("an invalid name was accepted")
    finally:
        await client.delete(NAMESPACES, namespace)
