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
    """``{pid: [(ip, port), ...]}`` of the TCP sockets these processes listen on."""
    by_inode = {}
    for table, v6 in (('/proc/net/tcp', False), ('/proc/net/tcp6', True)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == '0A':      # LISTEN
                by_inode[cols[9]] = (_decode(cols[1], v6), int(cols[1].split(':')[1], 16))
    return {pid: [by_inode[i] for i in _socket_inodes(pid) if i in by_inode] for pid in pids}
