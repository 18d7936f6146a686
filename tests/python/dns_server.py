"""A DNS server for tests: answers A queries for one name from a file the test rewrites.

Usage: dns_server.py ADDRESS NAME RECORDS_FILE

Listens on ADDRESS, UDP and TCP port 53. A query for NAME (type A or ANY) is answered with one A
record (TTL 0) per address in RECORDS_FILE, read again for every query, so the test changes the
answer by rewriting the file; an AAAA query for NAME gets an empty answer; any other name
NXDOMAIN. Prints "ready" once listening and serves until its standard input closes.
"""

import sys

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class RecordsFile(BaseResolver):
    def __init__(self, name, path):
        self.name = name.rstrip(".").lower()
        self.path = path

    def resolve(self, request, handler):
        reply = request.reply()
        qname = request.q.qname
        if str(qname).rstrip(".").lower() != self.name:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype in (QTYPE.A, QTYPE.ANY):
            with open(self.path) as records:
                for address in records.read().split():
                    reply.add_answer(RR(qname, QTYPE.A, rdata=A(address), ttl=0))
        return reply


def main():
    address, name, path = sys.argv[1:4]
    resolver = RecordsFile(name, path)
    logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [
        DNSServer(resolver, address=address, port=53, logger=logger),
        DNSServer(resolver, address=address, port=53, tcp=True, logger=logger),
    ]
    for server in servers:
        server.start_thread()
    print("ready", flush=True)
    sys.stdin.read()
    for server in servers:
        server.stop()


if __name__ == "__main__":
    main()
