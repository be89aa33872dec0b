"""The client library every Bosun component uses to reach the API server."""

from bosun.client.errors import ApiError
from bosun.client.informer import Informer, object_key
from bosun.client.kubeconfig import ClusterConfig, KubeconfigError, load_kubeconfig, write_kubeconfig
from bosun.client.leader import LeaderElector
from bosun.client.rest import Client
from bosun.client.workqueue import QueueShutdown, WorkQueue, run_workers

__all__ = [
    "ApiError",
    "Client",
    "ClusterConfig",
    "Informer",
    "KubeconfigError",
    "LeaderElector",
    "QueueShutdown",
    "WorkQueue",
    "load_kubeconfig",
    "object_key",
    "run_workers",
    "write_kubeconfig",
]
