"""Test hosts in network namespaces: each a veth pair away from the host side.

Only for tests that run as root with iproute2; everything made here is removed again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


def _subnet() -> str:
    """10.231.x.x, or one /16 further per pytest-xdist worker: each worker's hosts have
    addresses of their own, as two sets of hosts with the same addresses cannot coexist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return f"10.{231 + int(worker) % 20}"


SUBNET = _subnet()


@dataclass(frozen=True)
class Host:
    name: str  # the namespace
    address: str  # the host's own address, inside its namespace
    gateway: str  # the host side of its veth pair: where it reaches the database

    @property
    def prefix(self) -> tuple[str, ...]:
        """Run a command on this host."""
        return ("ip", "netns", "exec", self.name)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def why_not() -> str | None:
    """None when namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    probe = f"jqsprobe{os.getpid() % 100000}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        return f"cannot create a network namespace: {detail}"
    _ip("netns", "del", probe)
    return None


def make_hosts(count: int) -> list[Host]:
    """`count` namespaces, host i at SUBNET.i.2 reaching the host side at SUBNET.i.1."""
    tag = os.getpid() % 10000
    hosts: list[Host] = []
    try:
        for i in range(1, count + 1):
            name = f"jqs{tag}h{i}"
            outside, inside = f"jv{tag}o{i}", f"jv{tag}i{i}"
            host = Host(name, f"{SUBNET}.{i}.2", f"{SUBNET}.{i}.1")
            _ip("netns", "add", name)
            hosts.append(host)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", name)
            _ip("addr", "add", f"{host.gateway}/24", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("-n", name, "addr", "add", f"{host.address}/24", "dev", inside)
            _ip("-n", name, "link", "set", inside, "up")
            _ip("-n", name, "link", "set", "lo", "up")
    except BaseException:
        remove_hosts(hosts)
        raise
    return hosts


def remove_hosts(hosts: list[Host]) -> None:
    """Delete the namespaces (their veth pairs go with them)."""
    for host in hosts:
        subprocess.run(["ip", "netns", "del", host.name], check=False, capture_output=True)
