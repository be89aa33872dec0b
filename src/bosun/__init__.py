"""Bosun: a container orchestrator that speaks the Kubernetes API."""

import os as _os

# The scheduler's numpy arrays are small element-wise work, never BLAS; but numpy's OpenBLAS
# starts one thread per core at import that busy-waits after any call, taking cycles from the
# API server on a 2-core node (seen in `perf` during bench/pods.py). One thread: none spin.
# It must be set before numpy is first imported, hence here; a user's own setting wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# gRPC (the etcd client, gRPC probes) runs pthread_atfork handlers in every child forked while
# its threads are busy, and a child forked by uvloop's spawn while the etcd watch was mid-call
# died of SIGSEGV before it could exec (an API worker that never started). Every process Bosun
# forks execs at once and never uses gRPC before that, which is the case gRPC's fork support is
# not needed for; like OpenBLAS's, it is set before grpc is imported, and a user's setting wins.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

__version__ = "0.1.0"
