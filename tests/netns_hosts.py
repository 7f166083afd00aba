"""The project's own test hosts: network namespaces with their own addresses, made by a test
and removed after it.

Why: a Locust worker on another machine reaches the master and the target over a network,
from its own address. A test that runs every process on 127.0.0.1 cannot tell that apart
from a shortcut that only works within one network stack (a loopback-only bind, a path on
the shared disk). With root and iproute2, :func:`network_hosts` makes a bridge with one
address in this (the root) namespace, the *gateway*, where the target and the master
listen, and one namespace per host on that bridge, each with its own address; a command
runs on a host through ``ip netns exec``. The subnet is a random free /24 of 10.231.0.0/16
that exists only on this machine, for the length of the test.

Where namespaces cannot be made (no root, no ``ip``, a kernel or container that refuses),
the hosts fall back to loopback processes and :attr:`Hosts.why_not` says why; the test
prints it (and warns), so its output says which one ran.

Example::

    with network_hosts(2) as hosts:
        server = ReferenceServer(config, host=hosts.gateway).start()
        subprocess.Popen(hosts.on(0, ["secton-harness", "load", "--worker", ...]))
"""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

SUPERNET = ipaddress.ip_network("10.231.0.0/16")


@dataclass
class Hosts:
    """Where the shared services listen (``gateway``) and each host's address and namespace
    (empty namespaces: loopback fallback, ``why_not`` says why)."""

    gateway: str
    addresses: list[str]
    namespaces: list[str] = field(default_factory=list)
    why_not: str = ""

    def on(self, index: int, command: list[str]) -> list[str]:
        """``command`` as run on host ``index``."""
        if not self.namespaces:
            return command
        return ["ip", "netns", "exec", self.namespaces[index], *command]

    def describe(self) -> str:
        if not self.namespaces:
            return f"test hosts: loopback processes ({self.why_not})"
        return (f"test hosts: network namespaces {', '.join(self.namespaces)} at "
                f"{', '.join(self.addresses)}, gateway {self.gateway}")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def _free_subnet() -> ipaddress.IPv4Network:
    used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True,
                          timeout=10).stdout
    subnets = list(SUPERNET.subnets(new_prefix=24))
    for subnet in random.sample(subnets, 20):
        if f" {str(subnet.network_address).rsplit('.', 1)[0]}." not in used:
            return subnet
    raise OSError("no free /24 in 10.231.0.0/16")


@contextmanager
def network_hosts(count: int) -> Iterator[Hosts]:
    """``count`` hosts, namespaces if they can be made here, else loopback."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        yield Hosts("127.0.0.1", ["127.0.0.1"] * count,
                    why_not="network namespaces need root and iproute2's ip")
        return
    tag = secrets.token_hex(3)
    bridge = f"shb{tag}"
    namespaces: list[str] = []
    made_bridge = False
    try:
        try:
            subnet = _free_subnet()
            hosts = list(subnet.hosts())
            gateway = str(hosts[0])
            _ip("link", "add", bridge, "type", "bridge")
            made_bridge = True
            _ip("addr", "add", f"{gateway}/24", "dev", bridge)
            _ip("link", "set", bridge, "up")
            addresses = []
            for index in range(count):
                namespace = f"secton-{tag}-{index}"
                outer, inner = f"shv{tag}{index}", f"shp{tag}{index}"
                _ip("netns", "add", namespace)
                namespaces.append(namespace)
                _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
                _ip("link", "set", inner, "netns", namespace)
                _ip("link", "set", outer, "master", bridge, "up")
                address = str(hosts[index + 1])
                _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inner)
                _ip("-n", namespace, "link", "set", inner, "up")
                _ip("-n", namespace, "link", "set", "lo", "up")
                addresses.append(address)
            made = Hosts(gateway, addresses, namespaces)
        except (OSError, subprocess.SubprocessError) as error:
            detail = (getattr(error, "stderr", "") or str(error)).strip()[:200]
            made = Hosts("127.0.0.1", ["127.0.0.1"] * count,
                         why_not=f"network namespaces unavailable: {detail}")
        yield made
    finally:
        for namespace in namespaces:  # the inner veth ends go with it, and their peers
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)
        if made_bridge:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=10)
