"""A pod's ``dnsConfig``, checked as Kubernetes checks it (validatePodDNSConfig): what the
node would otherwise write into the pod's resolv.conf and the resolver would refuse or cut."""

from __future__ import annotations

from typing import Any

from bosun.api.errors import invalid, required
from bosun.api.validation.fields import Checker, child, index
from bosun.api.validation.meta import IP_MSG, dns1123_subdomain, valid_ip

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048


def validate_dns_config(c: Checker, spec: dict[str, Any], policy: str | None, path: str) -> None:
    cfg = c.obj(spec, "dnsConfig", path)
    if policy == "None" and cfg is None:
        c.add(required(path, "must provide `dnsConfig` when `dnsPolicy` is None"))
        return
    if cfg is None:
        return
    nameservers = c.strings(cfg, "nameservers", child(path, "nameservers"))
    if policy == "None" and not nameservers:
        c.add(required(child(path, "nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    if len(nameservers) > MAX_NAMESERVERS:
        c.add(invalid(child(path, "nameservers"), nameservers,
                      f"must not have more than {MAX_NAMESERVERS} nameservers"))
    for i, ns in enumerate(nameservers):
        if not valid_ip(ns):
            c.add(invalid(index(child(path, "nameservers"), i), ns, IP_MSG))
    searches = c.strings(cfg, "searches", child(path, "searches"))
    if len(searches) > MAX_SEARCHES:
        c.add(invalid(child(path, "searches"), searches, f"must not have more than {MAX_SEARCHES} search paths"))
    if len(" ".join(searches)) > MAX_SEARCH_CHARS:
        c.add(invalid(child(path, "searches"), searches, f"must not have more than {MAX_SEARCH_CHARS} "
                      "characters (including spaces) in the search list"))
    for i, search in enumerate(searches):
        name = search.removesuffix(".")  # a trailing dot is fine
        for msg in dns1123_subdomain(name):
            c.add(invalid(index(child(path, "searches"), i), name, msg))
    for i, opt in c.objects(cfg, "options", child(path, "options")):
        if not c.text(opt, "name", child(index(child(path, "options"), i), "name")):
            c.add(required(index(child(path, "options"), i), "must not be empty"))
