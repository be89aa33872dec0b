"""The client library every Bosun component uses to reach the API server."""

from bosun.client.kubeconfig import ClusterConfig, KubeconfigError, load_kubeconfig, write_kubeconfig
from bosun.client.rest import ApiError, Client
from bosun.client.workqueue import QueueShutdown, WorkQueue, run_workers

__all__ = [
    "ApiError",
    "Client",
    "ClusterConfig",
    "KubeconfigError",
    "QueueShutdown",
    "WorkQueue",
    "load_kubeconfig",
    "run_workers",
    "write_kubeconfig",
]
