"""The metrics-history and autoscaling flags of ``bosun server`` (kube-controller-manager's
``--horizontal-pod-autoscaler-*`` spelled shorter), checked before anything starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from bosun.cli.common import fail
from bosun.component import ControlPlaneOptions
from bosun.monitoring.history import HistoryConfig

F = TypeVar("F", bound=Callable[..., Any])
_H = HistoryConfig()
_O = ControlPlaneOptions()


def monitoring_options(f: F) -> F:
    options = [
        click.option("--metrics-retention", type=float, default=_H.retention, show_default=True,
                     help="Seconds of metrics history the control plane keeps."),
        click.option("--metrics-resolution", type=float, default=_H.resolution, show_default=True,
                     help="Seconds between two points of the history (how often the agents are read)."),
        click.option("--metrics-max-series", type=int, default=_H.max_series, show_default=True,
                     help="Most series kept (each holds retention/resolution points of 8 bytes)."),
        click.option("--metrics-snapshot-interval", type=float, default=_H.snapshot_interval, show_default=True,
                     help="Seconds between two writes of the metrics history to the data dir (read back at "
                     "start; 0: only when the server stops)."),
        click.option("--hpa-sync-period", type=float, default=_O.hpa_sync_period, show_default=True,
                     help="Seconds between two looks of the autoscaler at each HPA."),
        click.option("--hpa-downscale-stabilization", type=float, default=_O.hpa_downscale_stabilization,
                     show_default=True, help="Scale-down window of HPAs without spec.behavior (seconds)."),
        click.option("--hpa-tolerance", type=float, default=_O.hpa_tolerance, show_default=True,
                     help="Usage ratio change below which HPAs leave the replicas alone."),
        click.option("--hpa-cpu-initialization-period", type=float, default=_O.hpa_cpu_initialization_period,
                     show_default=True, help="Seconds after a pod starts during which its CPU is not trusted."),
        click.option("--hpa-initial-readiness-delay", type=float, default=_O.hpa_initial_readiness_delay,
                     show_default=True, help="Seconds after a pod starts during which readiness changes are "
                     "taken as start-up."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def apply_monitoring(values: dict[str, Any], options: ControlPlaneOptions) -> HistoryConfig:
    """Pop the flags from ``values`` into ``options``; the history's configuration."""
    retention, resolution = values.pop("metrics_retention"), values.pop("metrics_resolution")
    max_series = values.pop("metrics_max_series")
    snapshot_interval = values.pop("metrics_snapshot_interval")
    if snapshot_interval < 0:
        fail(f"--metrics-snapshot-interval must not be negative, got {snapshot_interval}")
    if resolution <= 0 or retention < resolution:
        fail(f"--metrics-retention ({retention}) must be at least --metrics-resolution ({resolution}), "
             "which must be positive")
    if max_series < 1:
        fail("--metrics-max-series must be at least 1")
    for name in ("hpa_sync_period", "hpa_downscale_stabilization", "hpa_tolerance",
                 "hpa_cpu_initialization_period", "hpa_initial_readiness_delay"):
        value = values.pop(name)
        if value < 0 or (name == "hpa_sync_period" and value <= 0):
            fail(f"--{name.replace('_', '-')} must be positive, got {value}")
        setattr(options, name, value)
    return HistoryConfig(retention=retention, resolution=resolution, max_series=max_series,
                         snapshot_interval=snapshot_interval)
