"""``x-bosun-ingress`` in a compose file and ``bosun service create --ingress-host``: the
Ingress a service gets (host, path, port, TLS), and warnings for entries that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from bosun.compose.errors import ComposeError
from bosun.compose.load import from_model, load
from bosun.compose.translate import Translation, translate
from bosun.swarm.flags import ServiceFlags, to_model


def _small(tmp_path: Path, text: str) -> Translation:
    f = tmp_path / "compose.yml"
    f.write_text(text)
    return translate(load([f], shell={}), "st")


def test_a_service_with_hosts_gets_an_ingress(tmp_path: Path) -> None:
    t = _small(tmp_path, """
services:
  web:
    image: nginx
    ports: ["8080:80", "9000:9000"]
    x-bosun-ingress:
      - {host: shop.example.com, tls: shop-cert}
      - {host: api.example.com, path: /v1, port: 9000}
      - {path: /nohost}
      - {host: x.example.com, port: 1234}
""")
    ingresses = [o for o in t.all_objects() if o["kind"] == "Ingress"]
    assert len(ingresses) == 1
    ing = ingresses[0]
    assert ing["metadata"]["name"] == "web" and ing["metadata"]["namespace"] == "st"
    assert ing["metadata"]["labels"]["com.docker.stack.namespace"] == "st"
    assert ing["spec"]["rules"] == [
        {"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "web", "port": {"number": 80}}}}]}},
        {"host": "api.example.com", "http": {"paths": [{"path": "/v1", "pathType": "Prefix", "backend": {
            "service": {"name": "web", "port": {"number": 9000}}}}]}}]
    assert ing["spec"]["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-cert"}]
    lines = t.warnings.lines()
    assert any("x-bosun-ingress[2]" in ln and "needs a host" in ln for ln in lines)
    assert any("x-bosun-ingress[3]" in ln and "port" in ln for ln in lines)
    # nginx on every node reaches the pods on those ports, whatever networks the service is on.
    reach = next(o for o in t.all_objects() if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "web-ingress")
    assert reach["spec"]["ingress"] == [{"ports": [{"port": 80, "protocol": "TCP"}, {"port": 9000, "protocol": "TCP"}]}]
    # The Service it names exists with that port.
    svc = next(o for o in t.all_objects() if o["kind"] == "Service" and o["metadata"]["name"] == "web")
    assert {p["port"] for p in svc["spec"]["ports"]} == {80, 9000}


def test_service_create_ingress_host(tmp_path: Path) -> None:
    flags = ServiceFlags(name="blog", image="nginx", publish=["8080:80"], ingress_host="blog.test",
                         ingress_path="/posts")
    t = translate(from_model(to_model(flags), tmp_path, {}, "service create"), "default", standalone=True)
    ing = next(o for o in t.all_objects() if o["kind"] == "Ingress")
    assert ing["spec"]["rules"][0]["host"] == "blog.test"
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/posts"
    with pytest.raises(ComposeError, match="--ingress-path needs --ingress-host"):
        to_model(ServiceFlags(name="blog", image="nginx", ingress_path="/x"))
