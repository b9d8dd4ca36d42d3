# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.smarthost.postfix.plugins.filter.relay_validate import relay_input_errors


def _input(**overrides):
    data = {
        'relay_state': 'present',
        'relay_upstreams': [
            {'host': 'smtp-a.example.net', 'port': 587, 'tls': 'verify', 'username': 'a', 'password': 'sec ret:1'},
            {'host': 'smtp-b.example.net', 'port': 587, 'tls': 'encrypt', 'username': 'b', 'password': 'pw'},
        ],
        'relay_mynetworks': ['127.0.0.0/8', '[::1]/128', '2001:db8::/32'],
        'relay_inet_interfaces': 'loopback-only',
        'relay_tls_ca_file': '/etc/ssl/certs/ca-certificates.crt',
        'relay_allow_plaintext_auth': False,
        'relay_connect_timeout': 5,
        'relay_helo_timeout': 30,
        'relay_myhostname': 'relay1.example.com',
        'relay_myorigin': '$myhostname',
        'relay_sender_address': None,
        'relay_sender_rewrite': {},
        'relay_root_forward': None,
        'relay_extra_parameters': {},
        'relay_map_type': 'hash',
    }
    data.update(overrides)
    return data


def _upstream(**fields):
    entry = {'host': 'smtp.example.net', 'port': 587, 'tls': 'encrypt'}
    entry.update(fields)
    return entry


def test_valid_input_has_no_errors():
    assert relay_input_errors(_input()) == []


@pytest.mark.parametrize('overrides, expected', [
    ({'relay_upstreams': []}, 'relay_upstreams: at least one upstream is required'),
    ({'relay_upstreams': [_upstream(port=70000)]}, 'relay_upstreams[0].port: 70000 is not a port (1-65535)'),
    ({'relay_upstreams': [_upstream(port=0)]}, 'relay_upstreams[0].port: 0 is not a port'),
    ({'relay_upstreams': [_upstream(host='bad host')]}, "relay_upstreams[0].host: 'bad host' is not a host name"),
    ({'relay_upstreams': [_upstream(host='-a.example')]}, "relay_upstreams[0].host: '-a.example'"),
    ({'relay_upstreams': [_upstream(host='')]}, 'relay_upstreams[0].host'),
    ({'relay_upstreams': [_upstream(username='u')]}, 'relay_upstreams[0]: username and password go together'),
    ({'relay_upstreams': [_upstream(username='u', password=' pw')]},
     'relay_upstreams[0].password: must not start or end with blanks'),
    ({'relay_upstreams': [_upstream(username='u', password='p\nw')]},
     'relay_upstreams[0].password: must not contain a line break'),
    ({'relay_upstreams': [_upstream(username='u:x', password='pw')]},
     "relay_upstreams[0].username: must not contain ':'"),
    ({'relay_upstreams': [_upstream(tls='none', username='u', password='pw')]},
     'relay_allow_plaintext_auth: true'),
    ({'relay_upstreams': [_upstream(tls='may', implicit_tls=True, port=465)]},
     'relay_upstreams[0]: implicit_tls needs tls encrypt, verify or secure, not may'),
    ({'relay_upstreams': [_upstream(port=465, implicit_tls=True), _upstream(host='b.example.net')]},
     'implicit_tls (port 465) and STARTTLS upstreams cannot be mixed'),
    ({'relay_upstreams': [_upstream(), _upstream()]},
     'relay_upstreams[1]: [smtp.example.net]:587 is the same next-hop as relay_upstreams[0]'),
    ({'relay_upstreams': [_upstream(host='192.0.2.1', mx_lookup=True)]}, 'mx_lookup needs a domain name'),
    ({'relay_mynetworks': ['127.0.0.0/8', '10.0.0.300/8']},
     "relay_mynetworks[1]: '10.0.0.300/8' is not a valid CIDR"),
    ({'relay_mynetworks': ['10.0.0.1/8']}, "relay_mynetworks[0]: '10.0.0.1/8' has host bits set; did you mean '10.0.0.0/8'?"),
    ({'relay_mynetworks': ['[10.0.0.0]/8']}, 'brackets are for IPv6 only'),
    ({'relay_mynetworks': '10.0.0.0/8'}, 'relay_mynetworks: must be a list'),
    ({'relay_inet_interfaces': ['10.0.0.1', 'eth0']}, "relay_inet_interfaces[1]: 'eth0' is not an IP address"),
    ({'relay_inet_interfaces': 'any'}, 'relay_inet_interfaces: must be'),
    ({'relay_sender_address': 'root'}, "relay_sender_address: 'root' is not a mail address"),
    ({'relay_sender_rewrite': {'@host1': 'a b@example.com'}}, 'relay_sender_rewrite[@host1]'),
    ({'relay_root_forward': 'ops@'}, "relay_root_forward: 'ops@' is not a mail address"),
    ({'relay_extra_parameters': {'relayhost': '[x]:25'}}, 'relay_extra_parameters.relayhost: is set by the role; use relay_upstreams'),
    ({'relay_extra_parameters': {'Bad-Name': 'x'}}, "relay_extra_parameters.Bad-Name: 'Bad-Name' is not a Postfix parameter name"),
    ({'relay_extra_parameters': {'smtp_bind_address': '1\n2'}}, 'must not contain a line break'),
    ({'relay_connect_timeout': 0}, 'relay_connect_timeout: 0 is not a number of seconds'),
    ({'relay_myhostname': 'relay_1'}, "relay_myhostname: 'relay_1' is not a host name"),
    ({'relay_tls_ca_file': 'certs/ca.pem'}, "relay_tls_ca_file: 'certs/ca.pem' is not an absolute path"),
    ({'relay_state': 'gone'}, "relay_state: 'gone' is not present or absent"),
])
def test_bad_input_is_named(overrides, expected):
    errors = relay_input_errors(_input(**overrides))
    assert any(expected in error for error in errors), errors


def test_plaintext_credentials_allowed_when_explicit():
    data = _input(relay_upstreams=[_upstream(tls='none', username='u', password='pw')], relay_allow_plaintext_auth=True)
    assert relay_input_errors(data) == []


def test_all_implicit_tls_is_accepted():
    data = _input(relay_upstreams=[_upstream(port=465, implicit_tls=True), _upstream(host='b.example.net', port=465, implicit_tls=True)])
    assert relay_input_errors(data) == []


def test_absent_needs_no_upstreams():
    assert relay_input_errors(_input(relay_state='absent', relay_upstreams=[])) == []


def test_password_never_in_messages():
    secret = ' hunter2'
    errors = relay_input_errors(_input(relay_upstreams=[_upstream(username='u', password=secret)]))
    assert errors and not any('hunter2' in error for error in errors)
