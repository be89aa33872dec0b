"""The cluster network flags of ``bosun server`` and ``bosun up``, in one place so both
commands spell, default and check them alike.

The settings are checked before anything starts (no data directory made, no port bound):
a bad combination is one line naming both settings and a non-zero exit code.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

import click

from bosun.cli.common import fail
from bosun.network.config import BACKENDS, NetworkConfig

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULTS = NetworkConfig()


def network_options(f: F) -> F:
    """Add --cluster-cidr, --service-cidr, --node-cidr-mask-size, --network-backend and
    --cluster-domain; the command receives them as one ``network: NetworkConfig``."""
    options = [
        click.option("--cluster-cidr", default=_DEFAULTS.cluster_cidr, show_default=True,
                     help="Pod addresses of the whole cluster; each node gets a slice of it."),
        click.option("--service-cidr", default=_DEFAULTS.service_cidr, show_default=True,
                     help="Where Service cluster IPs are allocated (must not overlap --cluster-cidr)."),
        click.option("--node-cidr-mask-size", type=int, default=_DEFAULTS.node_cidr_mask_size, show_default=True,
                     help="Prefix length of each node's pod network, cut from --cluster-cidr."),
        click.option("--network-backend", type=click.Choice(BACKENDS), default=_DEFAULTS.backend,
                     show_default=True, help="How pod traffic crosses nodes: a VXLAN overlay, or plain "
                     "routes via the peer's address (host-gw: nodes share a link)."),
        click.option("--cluster-domain", default=_DEFAULTS.cluster_domain, show_default=True,
                     help="DNS domain of Services and pods."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _checked_cidr(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value:
        return value
    try:
        return str(ipaddress.ip_network(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


pod_cidr_option = click.option(
    "--pod-cidr", default="", callback=_checked_cidr,
    help="Set this node's pod network (spec.podCIDR) when its Node has none, e.g. for a bare API server "
         "[default: assigned by the control plane from --cluster-cidr].")


def network_config(kw: dict[str, Any]) -> NetworkConfig:
    """Pop the flags of :func:`network_options` from a command's keyword arguments and
    return them checked; a bad combination exits with one line (no traceback)."""
    config = NetworkConfig(cluster_cidr=kw.pop("cluster_cidr"), service_cidr=kw.pop("service_cidr"),
                           node_cidr_mask_size=kw.pop("node_cidr_mask_size"), backend=kw.pop("network_backend"),
                           cluster_domain=kw.pop("cluster_domain"))
    try:
        config.validate()
    except ValueError as e:
        fail(f"error: {e}")
    return config


def ingress_port_options(f: F) -> F:
    """``--ingress-http-port`` / ``--ingress-https-port`` of ``bosun agent`` and ``bosun up``:
    where the node's nginx serves Ingresses (0 turns it off, or only its TLS)."""
    port = click.IntRange(0, 65535)
    f = click.option("--ingress-https-port", type=port, default=443, show_default=True,
                     help="Port of the node's HTTPS ingress (0: no TLS listener).")(f)
    return click.option("--ingress-http-port", type=port, default=80, show_default=True,
                        help="Port on which every node serves Ingresses over HTTP (0: no ingress on this node).")(f)


def check_ingress_ports(http: int, https: int) -> None:
    """One line, before anything starts, when both ingress ports are the same one."""
    if http and http == https:
        fail(f"error: --ingress-http-port and --ingress-https-port are both {http}: nginx needs two ports")
