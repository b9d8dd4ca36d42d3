# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The RFC 7208 test suite (data/rfc7208-tests.yml.txt, from pyspf) run case by case through spf_check.

Each case runs the module's main() with the case's sender, HELO name and address, against the local
DNS server (spf_dns_server) serving the zone data of the case's scenario; the suite's result (one of
the results it allows) and, where it names one, the explanation must come back.
"""

from __future__ import annotations

import json
import os

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
import yaml

from ansible_collections.smarthost.postfix.plugins.modules import spf_check
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules import spf_dns_server
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules.module_args import patch_module_args

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, 'data', 'rfc7208-tests.yml.txt')
# Seconds the module waits for a DNS answer: the zones' TIMEOUT names never answer.
TIMEOUT = 0.5

with open(SUITE, 'rb') as suite_file:
    SCENARIOS = list(yaml.safe_load_all(suite_file))
CASES = [pytest.param(index, name, case, id=name)
         for index, scenario in enumerate(SCENARIOS) for name, case in scenario['tests'].items()]

# The cases whose zone data DNS cannot carry as written: what the module answers instead, and why.
NOT_EXPRESSIBLE = {
    'null-text': (
        'temperror',
        'The zone gives null.example.com, besides its SPF record of two strings, a TXT record of no '
        'strings at all, which RFC 1035 does not allow (TXT data is one or more character-strings). '
        'dnspython cannot read such an answer, and its resolver ignores a reply it cannot read (as it '
        'ignores forged ones) and waits on until the timeout: the module reports that DNS did not '
        'answer. (pyspf\'s own test driver hands pyspf the records as Python values, and pyspf skips '
        'the empty one.) '
        'test_null_text_without_the_empty_record runs the rest of the case.'),
}


def txt_rdata(rdtype, strings):
    """A TXT or SPF record of the strings (as UTF-8, as pyspf's test driver encodes them)."""
    if not strings:
        # A record of no strings at all: dnspython builds none, so it goes on the wire as it is.
        return dns.rdata.GenericRdata(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), b'')
    rdata_class = dns.rdata.get_rdata_class(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype))
    return rdata_class(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), [text.encode('utf-8') for text in strings])


def zone(zonedata):
    """ZoneServer's records and silent names for a scenario's zone data, read as pyspf's test driver reads it.

    An entry TIMEOUT (always the last of a name's entries) makes the name answer only the types
    listed before it; a TXT of NONE says that the name has no TXT record; SPF records are also
    served as TXT records where a name lists no TXT (the suite's header asks drivers to do that).
    """
    records, silent = {}, []
    for name, entries in zonedata.items():
        types, txt = {}, []
        for entry in entries or []:
            if entry == 'TIMEOUT':
                silent.append(name.lower())
                continue
            [(rdtype, value)] = entry.items()
            if rdtype in ('TXT', 'SPF'):
                if rdtype == 'TXT':
                    txt.append(value)
                if value != 'NONE':
                    strings = [value] if isinstance(value, str) else value
                    types.setdefault(rdtype, []).append(txt_rdata(rdtype, strings))
                    if rdtype == 'SPF':
                        types.setdefault('SPF as TXT', []).append(txt_rdata('TXT', strings))
            elif rdtype == 'MX':
                types.setdefault(rdtype, []).append('%d %s.' % (value[0], value[1].rstrip('.')))
            elif rdtype in ('PTR', 'CNAME'):
                types.setdefault(rdtype, []).append(value.rstrip('.') + '.')
            else:
                types.setdefault(rdtype, []).append(value)
        generated = types.pop('SPF as TXT', [])
        if not txt:
            types['TXT'] = generated
        records[name] = types
    return records, silent


@pytest.fixture(scope='module')
def servers():
    """One DNS server per scenario, started when a case of it first runs."""
    started = {}

    def server(index):
        if index not in started:
            records, silent = zone(SCENARIOS[index]['zonedata'])
            started[index] = spf_dns_server.ZoneServer(records, silent=silent)
        return started[index]

    yield server
    for running in started.values():
        running.stop()


def run_case(capsys, case, port):
    with patch_module_args(module_args(case, port)):
        with pytest.raises(SystemExit):
            spf_check.main()
    result = json.loads(capsys.readouterr().out)
    assert result.get('failed') is not True, result
    return result


def module_args(case, port):
    args = dict(ip=case['host'], helo=case['helo'], nameservers=['127.0.0.1'], port=port, timeout=TIMEOUT)
    if case['mailfrom']:
        args['sender'] = case['mailfrom']
    else:
        # An empty sender: RFC 7208 section 2.4 checks postmaster@HELO, which is the sender the
        # module takes for a domain given alone (pyspf does the same for an empty sender).
        args['domain'] = case['helo']
    return args


@pytest.mark.parametrize('index, name, case', CASES)
def test_rfc7208_case(servers, capsys, index, name, case):
    # One case (bytes-bug) is marked strict: 2, pyspf's harsh mode for record checkers; the case
    # itself says that implementations may ignore it, and the module evaluates as RFC 7208 says.
    result = run_case(capsys, case, servers(index).port)
    if name in NOT_EXPRESSIBLE:
        instead, why = NOT_EXPRESSIBLE[name]
        assert result['result'] == instead, why
        return
    allowed = [case['result']] if isinstance(case['result'], str) else case['result']
    assert result['result'] in allowed, (case.get('description'), result)
    if 'explanation' in case:
        # The suite's DEFAULT is the receiver's own text, given when the domain publishes none.
        wanted = None if case['explanation'] == 'DEFAULT' else case['explanation']
        assert result['receiver_explanation'] == wanted, result


def test_the_suite_is_all_there():
    assert len(SCENARIOS) == 16
    assert len(CASES) == 203


def test_null_text_without_the_empty_record(capsys):
    """null-text, less its TXT record of no strings (see NOT_EXPRESSIBLE): two strings are glued together."""
    [(index, case)] = [(index, scenario['tests']['null-text'])
                       for index, scenario in enumerate(SCENARIOS) if 'null-text' in scenario['tests']]
    zonedata = dict(SCENARIOS[index]['zonedata'])
    zonedata['null.example.com'] = [entry for entry in zonedata['null.example.com'] if entry != {'SPF': []}]
    assert len(zonedata['null.example.com']) == 1
    records, silent = zone(zonedata)
    server = spf_dns_server.ZoneServer(records, silent=silent)
    try:
        result = run_case(capsys, case, server.port)
    finally:
        server.stop()
    assert result['result'] == case['result'] == 'pass'
    assert result['record'] == 'v=spf1 ip4:192.0.2.5 -all'
