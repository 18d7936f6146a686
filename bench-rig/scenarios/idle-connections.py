#!/usr/bin/env python3
"""Resident memory per idle connection of a tailgate binary on its embedded default config.

Usage: ulimit -n 20000; python3 bench-rig/scenarios/idle-connections.py target/release/tailgate [N]

Starts the binary (listening on 127.0.0.1:4317 and :4318), then opens N connections (default
2,500) of each kind in turn, keeping all of them open, and prints the growth of the process's
VmRSS divided by N: HTTP/1.1 silent, HTTP/1.1 with part of a head sent, gRPC silent, gRPC after
the HTTP/2 client preface and SETTINGS.
"""
import socket
import subprocess
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0"
KINDS = [
    ("HTTP/1.1, silent", 4318, b""),
    ("HTTP/1.1, part of a head", 4318, b"POST /v1/traces HTTP/1.1\r\nHost: t\r\nContent-"),
    ("gRPC, silent", 4317, b""),
    ("gRPC, after the HTTP/2 handshake", 4317, PREFACE),
]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main():
    binary = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2500
    gateway = subprocess.Popen([binary], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", 4318), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(1)
        held = []
        for kind, port, greeting in KINDS:
            before = rss_bytes(gateway.pid)
            for _ in range(count):
                connection = socket.create_connection(("127.0.0.1", port))
                if greeting:
                    connection.sendall(greeting)
                held.append(connection)
            time.sleep(1)
            grown = rss_bytes(gateway.pid) - before
            print(f"{kind}: {grown / count / 1024:.1f} KiB a connection")
    finally:
        gateway.kill()
        gateway.wait()


if __name__ == "__main__":
    main()
