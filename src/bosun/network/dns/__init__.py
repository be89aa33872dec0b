"""Cluster DNS served by each node agent from its informer caches (see :mod:`.component`)."""
