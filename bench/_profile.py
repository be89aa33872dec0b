"""py-spy on one process while a phase runs, so that a missed target comes with its evidence
(where the CPU went). Every benchmark records and stops py-spy the same way; only the rate and
the output options differ."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_profile(pid: int, out: Path, rate: int, *options: str, settle: float = 0.5) -> subprocess.Popen[bytes]:
    """py-spy ``pid`` into ``out`` at ``rate`` samples/s with ``options`` (``--format raw`` and so
    on); returns after ``settle`` seconds, so that py-spy has attached before the phase starts."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", str(rate), *options, "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(settle)
    return proc


def stop_profile(spy: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGINT makes py-spy write its file; a py-spy that hangs on it is killed (its file lost)."""
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
