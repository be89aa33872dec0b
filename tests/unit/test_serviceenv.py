"""Service link variables as kubelet writes them (what in-cluster clients and old apps read)."""

from __future__ import annotations

from bosun.agent.serviceenv import _links


def test_service_links_follow_dockers_naming() -> None:
    svc = {"metadata": {"name": "redis-primary"},
           "spec": {"clusterIP": "10.96.0.7", "ports": [{"name": "redis", "port": 6379, "protocol": "TCP"},
                                                         {"port": 9121}]}}
    assert _links(svc) == {
        "REDIS_PRIMARY_SERVICE_HOST": "10.96.0.7",
        "REDIS_PRIMARY_SERVICE_PORT": "6379",
        "REDIS_PRIMARY_SERVICE_PORT_REDIS": "6379",
        "REDIS_PRIMARY_PORT": "tcp://10.96.0.7:6379",
        "REDIS_PRIMARY_PORT_6379_TCP": "tcp://10.96.0.7:6379",
        "REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379",
        "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "10.96.0.7",
        "REDIS_PRIMARY_PORT_9121_TCP": "tcp://10.96.0.7:9121",
        "REDIS_PRIMARY_PORT_9121_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_9121_TCP_PORT": "9121",
        "REDIS_PRIMARY_PORT_9121_TCP_ADDR": "10.96.0.7",
    }
    assert _links({"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}) == {}
