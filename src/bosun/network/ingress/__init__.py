"""Ingress: HTTP(S) routing by host and path, with Debian's nginx as the data plane.

Each node agent runs nginx in the node's network namespace (:mod:`.component`), rendering its
configuration from Ingresses, IngressClasses, Services and the TLS Secrets the Ingresses name
(:mod:`.model` decides the routes, :mod:`.render` writes nginx.conf, :mod:`.nginx` checks,
swaps and reloads it). The control plane's :mod:`bosun.controllers.ingress` makes the default
IngressClass and publishes the nodes' addresses in each Ingress's status.
"""
