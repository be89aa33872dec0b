"""Compose files to Kubernetes objects: load (interpolate, merge, validate) then translate.

Laid out as swarmkit lays out its orchestrators: loading is one package of small steps, and
translation has one module per concern (workload kind per deploy mode, ports, networks,
volumes, probes, placement ...), so a new Compose field is one new function in one place.
"""
