"""Find a test's processes and their listening sockets through /proc (Linux)."""
import os
import socket
import struct
from typing import Dict, List, Set, Tuple


def pids_with_env(marker: str) -> Set[int]:
    """Processes whose environment contains the string ``marker``."""
    found = set()
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/environ' % entry, 'rb') as f:
                    if marker.encode() in f.read():
                        found.add(int(entry))
            except OSError:
                pass
    found.discard(os.getpid())
    return found


def _socket_inodes(pid: int) -> Set[str]:
    inodes = set()
    try:
        for fd in os.listdir('/proc/%d/fd' % pid):
            try:
                link = os.readlink('/proc/%d/fd/%s' % (pid, fd))
            except OSError:
                continue
            if link.startswith('socket:['):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


def _decode(address: str, v6: bool) -> str:
    ip_hex = address.split(':')[0]
    if not v6:
        return socket.inet_ntop(socket.AF_INET, struct.pack('<I', int(ip_hex, 16)))
    words = [struct.pack('<I', int(ip_hex[i:i + 8], 16)) for i in range(0, 32, 8)]
    return socket.inet_ntop(socket.AF_INET6, b''.join(words))


def listening_addresses(pids: Set[int]) -> Dict[int, List[Tuple[str, int]]]:
    """``{pid: [(ip, port), ...]}`` of the TCP sockets these processes listen on
    (each read in its own network namespace, through /proc/PID/net)."""
    found = {}
    for pid in pids:
        by_inode = {}
        for table, v6 in (('/proc/%d/net/tcp' % pid, False), ('/proc/%d/net/tcp6' % pid, True)):
            try:
                lines = open(table).read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                if cols[3] == '0A':      # LISTEN
                    by_inode[cols[9]] = (_decode(cols[1], v6), int(cols[1].split(':')[1], 16))
        found[pid] = [by_inode[i] for i in _socket_inodes(pid) if i in by_inode]
    return found


# --- separate hosts on one machine: Linux network namespaces (root only) ---

def _ip(*args: str) -> None:
    import subprocess
    proc = subprocess.run(['ip', *args], capture_output=True, text=True, timeout=30)
    if proc.returncode:
        raise OSError('ip %s: %s' % (' '.join(args), proc.stderr.strip()))


def namespace_pids(name: str) -> Set[int]:
    """Processes in the network namespace ``name`` (``ip netns pids``)."""
    import subprocess
    proc = subprocess.run(['ip', 'netns', 'pids', name], capture_output=True, text=True, timeout=30)
    return {int(p) for p in proc.stdout.split()}


class Hosts:
    """``count`` network namespaces, each a host with its own private address
    on one Ethernet segment: a bridge in a further namespace, joined by veth
    pairs. Nothing is created in the caller's namespace, so traffic stays
    among them. ``template`` runs a shell command line on a host (its address)."""

    def __init__(self, count: int = 3):
        tag = '%04x' % (os.getpid() & 0xffff)
        # 10.(200..249).X.0/24, from the pid: concurrent test sessions pick different ones.
        subnet = '10.%d.%d' % (200 + os.getpid() % 50, (os.getpid() // 50) % 250)
        self.addresses = ['%s.%d' % (subnet, i + 1) for i in range(count)]
        self.prefix = 'd2lt%s-' % tag
        self.switch = self.prefix + 'switch'
        self.names = [self.prefix + a for a in self.addresses]
        self.template = 'ip netns exec %s{host} sh -c' % self.prefix

    def create(self) -> 'Hosts':
        _ip('netns', 'add', self.switch)
        _ip('-n', self.switch, 'link', 'add', 'br0', 'type', 'bridge')
        _ip('-n', self.switch, 'link', 'set', 'br0', 'up')
        for i, (name, address) in enumerate(zip(self.names, self.addresses)):
            _ip('netns', 'add', name)
            _ip('link', 'add', 'name', 'eth0', 'netns', name, 'type', 'veth', 'peer', 'name', 'p%d' % i,
                'netns', self.switch)
            _ip('-n', self.switch, 'link', 'set', 'p%d' % i, 'master', 'br0', 'up')
            _ip('-n', name, 'addr', 'add', address + '/24', 'dev', 'eth0')
            _ip('-n', name, 'link', 'set', 'eth0', 'up')
            _ip('-n', name, 'link', 'set', 'lo', 'up')
        return self

    def pids(self) -> Set[int]:
        """Every process in any of the hosts."""
        return set().union(*(namespace_pids(n) for n in self.names))

    def remove(self) -> None:
        """Kill what runs in the hosts, delete them; quietly, whatever exists."""
        import signal
        import subprocess
        for name in self.names + [self.switch]:
            for pid in namespace_pids(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(['ip', 'netns', 'del', name], capture_output=True, timeout=30)


def hosts_fixture():
    """A pytest fixture body: yields :class:`Hosts` (3), skips unless root with iproute2 and namespaces."""
    import shutil
    import pytest
    if os.geteuid() != 0:
        pytest.skip('network namespaces need root (CI runs as root)')
    if shutil.which('ip') is None:
        pytest.skip('network namespaces need iproute2 (`ip`): apt-get install iproute2')
    hosts = Hosts(3)
    try:
        try:
            hosts.create()
        except OSError as err:
            pytest.skip('cannot create network namespaces here (%s)' % err)
        yield hosts
    finally:
        hosts.remove()
