"""The test hosts of tests/netns_hosts.py: a host's process reaches the gateway from its
own address, nothing is left behind, and without ``ip`` the hosts are loopback with the
reason given."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from netns_hosts import network_hosts

CONNECT = ("import socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2])),"
           " timeout=10); print(s.getsockname()[0])")


def test_a_host_reaches_the_gateway_from_its_own_address() -> None:
    with network_hosts(2) as hosts, socket.socket() as listener:
        listener.bind((hosts.gateway, 0))
        listener.listen()
        port = str(listener.getsockname()[1])
        seen = [subprocess.run(hosts.on(i, [sys.executable, "-c", CONNECT, hosts.gateway,
                                            port]), capture_output=True, text=True,
                               timeout=30) for i in range(2)]
        assert [r.returncode for r in seen] == [0, 0], [r.stderr[-500:] for r in seen]
        assert [r.stdout.strip() for r in seen] == hosts.addresses
        if hosts.namespaces:
            assert len(set(hosts.addresses)) == 2 and hosts.gateway not in hosts.addresses
            names = hosts.namespaces
    if hosts.namespaces:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        assert not any(name in listed.stdout for name in names)  # removed after


def test_without_ip_the_hosts_are_loopback_and_say_why(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `ip` on it
    with network_hosts(2) as hosts:
        assert hosts.namespaces == [] and hosts.addresses == ["127.0.0.1"] * 2
        assert hosts.on(1, ["true"]) == ["true"]
        assert "loopback" in hosts.describe() and hosts.why_not
