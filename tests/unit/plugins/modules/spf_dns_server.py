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
import dns.rcode
import dns.rdatatype
import dns.rrset


class ZoneServer:
    """Serve ``records`` = {name: {rdtype: [rdata text, ...]}}.

    Names in ``servfail`` get SERVFAIL and names in ``silent`` get no answer at all (a timeout);
    any other name not in ``records`` gets NXDOMAIN. Every question asked is kept in ``questions``.
    """

    def __init__(self, records, servfail=(), silent=()):
        self.records = {name.lower().rstrip('.'): types for name, types in records.items()}
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

    def answer(self, wire):
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name, rdtype))
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            texts = self.records[name].get(rdtype, [])
            if texts:
                response.answer.append(dns.rrset.from_text_list(question.name, 300, 'IN', rdtype, texts))
        return response.to_wire()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()
