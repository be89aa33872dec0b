"""The ingress's routing model and nginx.conf rendering, pure: Kubernetes' precedence rules as
nginx locations, conflicts, default backends, TLS assignment, annotations, class selection;
and IngressClass validation."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from bosun.api.defaults import apply_defaults
from bosun.api.registry import by_kind
from bosun.api.validation import validate_unchecked
from bosun.api.validation.fields import Checker
from bosun.api.validation.ingress import ingress_class_update, validate_ingress_class
from bosun.network.ingress.annotations import parse_annotations
from bosun.network.ingress.classes import CONTROLLER, default_class, is_ours
from bosun.network.ingress.model import Cert, build, host_matches
from bosun.network.ingress.render import Settings, render
from bosun.network.ingress.tls import CertStore, check_pair, self_signed

SVC = {"spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}


def services(ns: str, name: str) -> dict[str, Any] | None:
    known: dict[str, dict[str, Any]] = {
        "web": SVC, "api": {"spec": {"clusterIP": "10.96.0.11", "ports": [{"port": 8080}]}},
        "headless": {"spec": {"clusterIP": "None"}}}
    return known.get(name)


def no_certs(ns: str, name: str) -> Cert:
    return Cert("", "not found")


def ing(name: str, rules: list[Any] | None = None, created: str = "2024-01-01T00:00:00Z",
        **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", {})
    return {"metadata": {"namespace": "ns", "name": name, "creationTimestamp": created, "annotations": annotations,
                         "resourceVersion": "1"},
            "spec": {**({"rules": rules} if rules else {}), **spec}}


def p(path: str, ptype: str, svc: str = "web", port: Any = 80) -> dict[str, Any]:
    ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {"path": path, "pathType": ptype, "backend": {"service": {"name": svc, "port": ref}}}


def locations(routes: Any, host: str) -> dict[tuple[str, str], str]:
    """(modifier, path) -> upstream address (or "503")."""
    return {k: (f"{v.upstream.address}:{v.upstream.port}" if v.upstream else "503")
            for k, v in routes.servers[host].locations.items()}


def test_path_types_become_nginx_locations_with_kubernetes_precedence() -> None:
    routes = build([ing("a", [{"host": "h.test", "http": {"paths": [
        p("/api/", "Prefix", "api", 8080), p("/api", "Exact", "web"), p("/", "Prefix"),
        p("/raw", "ImplementationSpecific")]}}])],
        services, no_certs)
    assert locations(routes, "h.test") == {
        ("=", "/api"): "10.96.0.10:80",  # Exact beats the Prefix's own exact location
        ("^~", "/api/"): "10.96.0.11:8080",  # Prefix /api/ == /api: element-wise, trailing slash ignored
        ("^~", "/"): "10.96.0.10:80",
        ("^~", "/raw"): "10.96.0.10:80"}
    assert routes.problems == []


def test_conflicts_older_wins_with_an_event_and_missing_backends_answer_503() -> None:
    older = ing("old", [{"host": "h.test", "http": {"paths": [p("/", "Prefix")]}}], created="2024-01-01T00:00:00Z")
    newer = ing("new", [{"host": "h.test", "http": {"paths": [p("/", "Prefix", "api", 8080), p("/x", "Exact", "ghost"),
                                                              p("/y", "Exact", "web", "nope"),
                                                              p("/z", "Exact", "headless")]}}],
                created="2024-02-01T00:00:00Z")
    routes = build([newer, older], services, no_certs)
    locs = locations(routes, "h.test")
    assert locs[("^~", "/")] == "10.96.0.10:80"
    assert locs[("=", "/x")] == locs[("=", "/y")] == locs[("=", "/z")] == "503"
    reasons = [(pr.ingress, pr.reason) for pr in routes.problems]
    assert reasons == [("ns/new", "RuleConflict"), ("ns/new", "ServiceNotFound"), ("ns/new", "ServicePortNotFound"),
                       ("ns/new", "ServiceWithoutClusterIP")]


def test_default_backend_serves_its_hosts_and_unknown_hosts() -> None:
    routes = build([ing("d", [{"host": "h.test", "http": {"paths": [p("/only", "Exact", "api")]}}],
                        defaultBackend={"service": {"name": "web", "port": {"name": "http"}}})], services, no_certs)
    assert locations(routes, "h.test")[("^~", "/")] == "10.96.0.10:80"
    assert locations(routes, "")[("^~", "/")] == "10.96.0.10:80"


def test_tls_hosts_get_their_certificate_and_wildcards_match_one_label() -> None:
    assert host_matches("*.example.com", "a.example.com")
    assert not host_matches("*.example.com", "a.b.example.com") and not host_matches("*.example.com", "example.com")

    def certs(ns: str, name: str) -> Cert:
        return Cert(f"/certs/{name}.pem", "tls.crt is not a PEM certificate" if name == "old" else "")

    routes = build([ing("t", [{"host": "a.example.com", "http": {"paths": [p("/", "Prefix")]}},
                              {"host": "plain.test", "http": {"paths": [p("/", "Prefix")]}}],
                        tls=[{"hosts": ["*.example.com"], "secretName": "old"}])], services, certs)
    assert routes.servers["a.example.com"].cert == "/certs/old.pem"
    assert routes.servers["plain.test"].cert == ""
    assert [pr.reason for pr in routes.problems] == ["InvalidTLSSecret"]
    assert "kept" in routes.problems[0].message


def test_rendered_config_redirects_tls_hosts_and_knows_each_line_origin(tmp_path: Path) -> None:
    routes = build([ing("t", [{"host": "*.example.com", "http": {"paths": [p("/", "Prefix")]}}],
                        tls=[{"secretName": "s"}], annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}),
                    ing("u", [{"host": "u.test", "http": {"paths": [p("/", "Prefix")]}}],
                        annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"})],
                   services, lambda ns, name: Cert("/c/s.pem"))
    text, origins = render(routes, Settings(8080, 8443, tmp_path, "/c/default.pem"))
    lines = text.splitlines()
    assert len(lines) == len(origins)
    wild = lines.index('    server_name "~^[^.]+\\\\.example\\\\.com$";')
    assert origins[wild] == "ns/t"
    block = lines[wild:lines.index("  }", wild)]
    assert "      if ($scheme = http) { return 308 https://$host:8443$request_uri; }" in block
    assert "      client_max_body_size 8m;" in block
    u = lines.index('    server_name "u.test";')
    assert not any("return 308" in ln for ln in lines[u:lines.index("  }", u)])
    unavailable = f'"unix:{tmp_path}/503.sock"'
    assert f"  upstream ns_web_80_http {{ server 10.96.0.10:80 max_fails=0; server {unavailable} backup; " \
           "keepalive 64; keepalive_requests 32; keepalive_timeout 10s; }" in lines
    assert f"  server {{ listen {unavailable}; return 503; }}" in lines


def test_annotations_known_invalid_and_unknown() -> None:
    options, warnings = parse_annotations(ing("a", annotations={
        "nginx.ingress.kubernetes.io/rewrite-target": "/$2", "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
        "nginx.ingress.kubernetes.io/proxy-body-size": "lots", "nginx.ingress.kubernetes.io/ssl-redirect": "maybe",
        "nginx.ingress.kubernetes.io/auth-url": "http://x", "kubectl.kubernetes.io/last-applied-configuration": "{}"}))
    assert (options.rewrite_target, options.regex, options.protocol, options.body_size, options.ssl_redirect) == \
        ("/$2", True, "https", "", True)
    assert [w[0] for w in warnings] == ["AnnotationIgnored", "InvalidAnnotation", "InvalidAnnotation"]


def test_rewrite_target_without_captures_replaces_the_matched_prefix() -> None:
    routes = build([ing("r", [{"host": "h", "http": {"paths": [p("/api", "Prefix")]}}],
                        annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/"})], services, no_certs)
    assert routes.servers["h"].locations[("^~", "/api/")].rewrite == ("^/api/?(.*)$", "/$1")


def test_class_selection() -> None:
    ours, theirs = default_class(), {"metadata": {"name": "other"}, "spec": {"controller": "example.com/x"}}
    assert ours["spec"]["controller"] == CONTROLLER
    assert is_ours({"spec": {}}, [ours, theirs]) and is_ours({"spec": {}}, [])
    assert is_ours({"spec": {"ingressClassName": "bosun"}}, [ours])
    assert not is_ours({"spec": {"ingressClassName": "other"}}, [ours, theirs])
    assert not is_ours({"spec": {"ingressClassName": "missing"}}, [ours])
    assert not is_ours({"metadata": {"annotations": {"kubernetes.io/ingress.class": "other"}}}, [ours, theirs])
    theirs_default = {**theirs, "metadata": {"name": "other", "annotations": {
        "ingressclass.kubernetes.io/is-default-class": "true"}}}
    assert not is_ours({"spec": {}}, [{**ours, "metadata": {"name": "bosun"}}, theirs_default])


def test_cert_store_keeps_the_last_good_certificate(tmp_path: Path) -> None:
    pem = self_signed("a.test", ("a.test",))
    key, _, crt = pem.partition(b"-----BEGIN CERTIFICATE-----")

    def secret(c: bytes, k: bytes) -> dict[str, Any]:
        return {"data": {"tls.crt": base64.b64encode(c).decode(), "tls.key": base64.b64encode(k).decode()}}

    good = secret(b"-----BEGIN CERTIFICATE-----" + crt, key)
    assert check_pair(good).startswith(b"-----BEGIN PRIVATE KEY-----")
    store = CertStore(tmp_path)
    store.update("ns", "s", good)
    first = store.lookup("ns", "s")
    assert first.error == "" and Path(first.path).stat().st_mode & 0o777 == 0o600
    other_key = self_signed("b.test").partition(b"-----BEGIN CERTIFICATE-----")[0]
    store.update("ns", "s", secret(b"-----BEGIN CERTIFICATE-----" + crt, other_key))
    assert store.lookup("ns", "s") == Cert(first.path, "tls.key does not match the certificate in tls.crt")
    store.update("ns", "s", None)
    assert store.lookup("ns", "s") == Cert("", "not found")
    assert store.lookup("ns", "never-seen") == Cert("", "")
    store.collect(set())
    assert not Path(first.path).exists()


def test_ingress_class_validation() -> None:
    def errors(obj: dict[str, Any]) -> list[str]:
        c = Checker()
        validate_ingress_class(c, obj)
        return [e.detail() for e in c.errors]

    good = {"metadata": {"name": "mine"}, "spec": {"controller": "example.com/ingress"}}
    assert errors(good) == []
    assert errors({"metadata": {"name": "x"}, "spec": {"controller": "nodomain"}}) == [
        'spec.controller: Invalid value: "nodomain": must be a domain-prefixed path (such as "acme.io/foo")']
    assert errors({"metadata": {"name": "x"}, "spec": {}}) == ["spec.controller: Required value"]
    assert [e.detail() for e in ingress_class_update({"spec": {"controller": "a.io/b"}}, good)] == [
        'spec.controller: Invalid value: "a.io/b": field is immutable']


def test_the_example_is_valid_and_routes_api_and_site() -> None:
    docs = list(yaml.safe_load_all((Path(__file__).parents[2] / "examples" / "ingress.yaml").read_text()))
    for obj in docs:
        res = by_kind(obj["apiVersion"], obj["kind"])
        assert res is not None
        obj = {**obj, "metadata": {**obj["metadata"], "namespace": "default"}}
        apply_defaults(res, obj)
        assert [e.detail() for e in validate_unchecked(res, obj)] == []
    ingresses = [{**o, "metadata": {**o["metadata"], "namespace": "default"}} for o in docs if o["kind"] == "Ingress"]
    routes = build(ingresses, lambda ns, name: SVC if name in ("api", "hello") else None,
                   lambda ns, name: Cert("/c/shop.pem"))
    shop = routes.servers["shop.example.com"]
    assert shop.cert == "/c/shop.pem" and routes.problems == []
    assert {k: v.origin for k, v in shop.locations.items()} == {
        ("=", "/api"): "default/shop", ("^~", "/api/"): "default/shop", ("^~", "/"): "default/shop-site"}
