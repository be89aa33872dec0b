"""Bosun: a container orchestrator that speaks the Kubernetes API."""

import os as _os

# The scheduler's numpy arrays are small element-wise work, never BLAS; but numpy's OpenBLAS
# starts one thread per core at import that busy-waits after any call, taking cycles from the
# API server on a 2-core node (seen in `perf` during bench/pods.py). One thread: none spin.
# It must be set before numpy is first imported, hence here; a user's own setting wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
