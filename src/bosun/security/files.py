"""Writing the files that hold keys, tokens and credentials.

Why a module: the CA and serving keys, the admin and join tokens and an agent's node
credential are all replaced atomically and must never be readable by others, not even
for the instant between creating a file and setting its mode.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` at once, with ``mode`` from creation on.

    The temporary name carries the pid, so two processes writing the same file (an agent
    and ``bosun`` on one host) never write into each other's half-made copy."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)  # os.open's mode is cut by the umask
    finally:
        os.close(fd)
    os.replace(tmp, path)
