"""Routes to nginx.conf text: pure, and every line knows which Ingress it came from, so that
when ``nginx -t`` refuses a line the component can tell which Ingress to blame (and keep that
Ingress's last good version) instead of refusing every change.

Upstreams are Service cluster IPs with a small keep-alive pool: the node's service proxy
balances connections over the endpoints, so scaling needs no reload. A route whose Service
cannot be reached (no endpoints: the proxy refuses at once) answers 503, not 502, as
ingress-nginx does (each upstream's backup is a server of our own that says so). The client's
address reaches the application in ``X-Real-IP`` and ``X-Forwarded-For``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bosun.network.ingress.model import DEFAULT_SERVER, Location, Routes, Server, Upstream, wildcard_regex

KEEPALIVE_REQUESTS = 32
UNAVAILABLE_SOCKET = "503.sock"


@dataclass(frozen=True)
class Settings:
    http_port: int
    https_port: int  # 0: no TLS listener
    state_dir: Path  # pid file, logs, temp files
    default_cert: str  # PEM (chain and key) of the catch-all HTTPS server
    workers: str = "auto"  # nginx worker_processes


def q(text: str) -> str:
    """An nginx string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Lines:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.origins: list[str] = []

    def add(self, line: str, origin: str = "") -> None:
        self.text.append(line)
        self.origins.append(origin)


def _head(out: _Lines, s: Settings) -> None:
    d = s.state_dir
    for line in (
        f"worker_processes {s.workers};",
        "worker_shutdown_timeout 10s;",  # old workers of a reload never linger on a slow client
        f"pid {q(str(d / 'nginx.pid'))};",
        f"error_log {q(str(d / 'error.log'))} warn;",
        "events { worker_connections 4096; }",
        "http {",
        "  access_log off;",
        "  server_tokens off;",
        "  sendfile on;",
        "  tcp_nodelay on;",
        "  keepalive_timeout 65s;",
        "  keepalive_requests 10000;",
        "  server_names_hash_bucket_size 128;",
        "  types_hash_max_size 2048;",
        "  default_type application/octet-stream;",
        f"  client_body_temp_path {q(str(d / 'tmp' / 'body'))};",
        f"  proxy_temp_path {q(str(d / 'tmp' / 'proxy'))};",
        f"  fastcgi_temp_path {q(str(d / 'tmp' / 'fastcgi'))};",
        f"  uwsgi_temp_path {q(str(d / 'tmp' / 'uwsgi'))};",
        f"  scgi_temp_path {q(str(d / 'tmp' / 'scgi'))};",
        "  ssl_protocols TLSv1.2 TLSv1.3;",
        # No shared session cache: nginx would zero its memory at every check and reload (over
        # 100 ms for 10 MB); TLS session tickets (nginx's default) resume sessions without one.
        "  map $http_upgrade $bosun_connection { default upgrade; \"\" \"\"; }",
        "  proxy_http_version 1.1;",
        "  proxy_connect_timeout 5s;",
        "  proxy_read_timeout 60s;",
        "  proxy_send_timeout 60s;",
        "  proxy_next_upstream error timeout;",
        "  proxy_set_header Host $host;",
        "  proxy_set_header Upgrade $http_upgrade;",
        "  proxy_set_header Connection $bosun_connection;",
        "  proxy_set_header X-Real-IP $remote_addr;",
        "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "  proxy_set_header X-Forwarded-Proto $scheme;",
        "  proxy_set_header X-Forwarded-Host $host;",
        "  proxy_set_header X-Forwarded-Port $server_port;",
    ):
        out.add(line)
    # A Service that refuses the connection (no endpoints) is "unavailable", as ingress-nginx
    # says: every upstream's backup is this server, answering 503 (one server block, not a named
    # location in each server, which would double nginx's parse time with hundreds of hosts).
    out.add(f"  server {{ listen {q('unix:' + str(s.state_dir / UNAVAILABLE_SOCKET))}; return 503; }}")


def _upstreams(out: _Lines, routes: Routes, s: Settings) -> None:
    seen: dict[str, str] = {}
    for server in routes.servers.values():
        for loc in server.locations.values():
            if loc.upstream is not None and loc.upstream.name not in seen:
                seen[loc.upstream.name] = loc.origin
                up = loc.upstream
                # The proxy balances per connection: a kept-alive connection is reused for at most
                # KEEPALIVE_REQUESTS requests, so new endpoints (a scaled Deployment) get their share.
                # max_fails=0: a refusal never marks the Service down; the next request tries it again.
                out.add(f"  upstream {up.name} {{ server {up.address}:{up.port} max_fails=0; "
                        f"server {q('unix:' + str(s.state_dir / UNAVAILABLE_SOCKET))} backup; keepalive 64; "
                        f"keepalive_requests {KEEPALIVE_REQUESTS}; keepalive_timeout 10s; }}", loc.origin)


def _location(out: _Lines, loc: Location, tls: bool, s: Settings) -> None:
    o = loc.origin
    out.add(f"    location {loc.modifier} {q(loc.path)} {{", o)
    redirect = (tls and loc.options.ssl_redirect) or loc.options.force_ssl_redirect
    if redirect and s.https_port:
        port = "" if s.https_port == 443 else f":{s.https_port}"
        out.add(f"      if ($scheme = http) {{ return 308 https://$host{port}$request_uri; }}", o)
    if loc.options.body_size:
        out.add(f"      client_max_body_size {loc.options.body_size};", o)
    if loc.upstream is None:
        out.add("      return 503;", o)
    else:
        if loc.rewrite is not None:
            out.add(f"      rewrite {q(loc.rewrite[0])} {q(loc.rewrite[1])} break;", o)
        up: Upstream = loc.upstream
        if up.protocol == "https":
            out.add("      proxy_ssl_server_name on;", o)
        out.add(f"      proxy_pass {up.protocol}://{up.name};", o)
    out.add("    }", o)


def _order(server: Server) -> list[Location]:
    """nginx tries regular expressions in the order given: longest first, as ingress-nginx."""
    locs = list(server.locations.values())
    return sorted(locs, key=lambda loc: (loc.modifier != "~*", -len(loc.path) if loc.modifier == "~*" else 0,
                                         loc.modifier, loc.path))


def _server(out: _Lines, server: Server, s: Settings) -> None:
    default = server.host == DEFAULT_SERVER
    origin = server.cert_origin
    out.add("  server {", origin)
    flag = " default_server" if default else ""
    out.add(f"    listen {s.http_port}{flag};", origin)
    cert = server.cert or (s.default_cert if default else "")
    tls = bool(server.cert)
    if cert and s.https_port:
        out.add(f"    listen {s.https_port} ssl http2{flag};", origin)
        out.add(f"    ssl_certificate {q(cert)};", origin)
        out.add(f"    ssl_certificate_key {q(cert)};", origin)
    if default:
        out.add("    server_name _;")
    else:
        name = wildcard_regex(server.host) if server.host.startswith("*.") else server.host
        out.add(f"    server_name {q(name)};", origin)
    for loc in _order(server):
        _location(out, loc, tls, s)
    if ("^~", "/") not in server.locations:
        out.add("    location / { return 404; }")
    out.add("  }")


def render(routes: Routes, s: Settings) -> tuple[str, list[str]]:
    """nginx.conf for ``routes``, and the Ingress each line came from ("" for our own)."""
    out = _Lines()
    _head(out, s)
    _upstreams(out, routes, s)
    servers = sorted(routes.servers.values(), key=lambda srv: (srv.host != DEFAULT_SERVER, srv.host))
    for server in servers:
        _server(out, server, s)
    out.add("}")
    return "\n".join(out.text) + "\n", out.origins
