# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small authoritative DNS server on 127.0.0.1 for the spf_check tests, built on dnspython.

It answers UDP queries from a dict of records, so the tests never ask any other resolver.
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def key(name):
    """A name (text or dnspython Name) as the server files it: dnspython's text form, lower case, no final dot.

    That is the plain name for ordinary names; blanks and other odd characters show as \\DDD escapes.
    """
    if not isinstance(name, dns.name.Name):
        name = dns.name.from_text(name)
    return name.to_text(omit_final_dot=True).lower()


class ZoneServer:
    """Serve ``records`` = {name: {rdtype: [rdata, ...]}}, each rdata as text or a dnspython Rdata.

    Like an authoritative server, an alias (CNAME) is answered with its record and then with the
    records of its target that it holds, following a chain until it ends or loops.
    Names in ``servfail`` get SERVFAIL. Names in ``silent`` never get an answer (a timeout) for a
    type they hold no records of; a silent name without records times out for every type. Any
    other name not in ``records`` gets NXDOMAIN. Every question asked is kept in ``questions``
    (the name as ``key`` writes it, the type as text).
    """

    def __init__(self, records, servfail=(), silent=()):
        self.records = {key(name): types for name, types in records.items()}
        self.servfail = set(servfail)
        self.silent = set(silent)
        self.questions = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            reply = self.answer(wire)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def rrset(self, name, rdtype):
        """The records of one name and type as an RRset, or None."""
        values = self.records.get(key(name), {}).get(rdtype, [])
        if not values:
            return None
        rdatas = [value if isinstance(value, dns.rdata.Rdata)
                  else dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False)
                  for value in values]
        return dns.rrset.from_rdata_list(name, 300, rdatas)

    def answer(self, wire):
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = key(question.name)
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name, rdtype))
        types = self.records.get(name, {})
        if name in self.silent and not types.get(rdtype):
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            self.add_answer(response, question.name, rdtype)
        return response.to_wire()

    def add_answer(self, response, qname, rdtype):
        seen = set()
        while qname not in seen:
            seen.add(qname)
            found = self.rrset(qname, rdtype)
            alias = None if found is not None or rdtype == 'CNAME' else self.rrset(qname, 'CNAME')
            if found is None and alias is None:
                return
            response.answer.append(found or alias)
            if alias is None:
                return
            qname = alias[0].target
            if key(qname) not in self.records:
                return

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()
