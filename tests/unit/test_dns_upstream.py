"""Where cluster DNS forwards: `bosun agent --upstream-dns` values, and the node's resolv.conf."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bosun.network.dns.forward import resolv_conf_nameservers, upstream_address

BOSUN = str(Path(sys.executable).with_name("bosun"))


def test_upstream_addresses() -> None:
    assert upstream_address("192.0.2.53") == ("192.0.2.53", 53)
    assert upstream_address("192.0.2.53:5353") == ("192.0.2.53", 5353)
    assert upstream_address("2001:db8::53") == ("2001:db8::53", 53)
    assert upstream_address("[2001:db8::53]:5353") == ("2001:db8::53", 5353)
    assert upstream_address("fe80::1%eth0") == ("fe80::1%eth0", 53)


@pytest.mark.parametrize("bad", ["dns.example", "192.0.2.53:0", "192.0.2.53:70000", "192.0.2.53:x", "", "[::1]:"])
def test_bad_upstream_addresses_say_what_is_expected(bad: str) -> None:
    with pytest.raises(ValueError, match="expected an IP address"):
        upstream_address(bad)


def test_the_nodes_nameservers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nsearch lan\nnameserver 192.0.2.1\nnameserver\tfe80::1%eth0\noptions ndots:1\n")
    assert resolv_conf_nameservers(conf) == ["192.0.2.1", "fe80::1%eth0"]
    assert resolv_conf_nameservers(tmp_path / "absent") == []


def test_the_agent_refuses_a_bad_upstream_in_one_line() -> None:
    done = subprocess.run([BOSUN, "agent", "--server", "https://127.0.0.1:1", "--token", "t",
                           "--upstream-dns", "dns.example"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "--upstream-dns" in done.stderr and "expected an IP address" in done.stderr
    assert "Traceback" not in done.stderr
