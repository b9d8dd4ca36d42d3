# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.smarthost.postfix.plugins.filter.relay_format import (
    relay_generic_entries,
    relay_nexthop,
    relay_postfix_network,
    relay_sasl_entries,
    relay_tls_policy_entries,
)


@pytest.mark.parametrize('upstream, expected', [
    ({'host': 'smtp.example.net'}, '[smtp.example.net]:587'),
    ({'host': 'smtp.example.net', 'port': 465}, '[smtp.example.net]:465'),
    ({'host': 'example.net', 'port': 25, 'mx_lookup': True}, 'example.net:25'),
    ({'host': '192.0.2.7', 'port': 2525}, '[192.0.2.7]:2525'),
    ({'host': '2001:db8::7', 'port': 587}, '[ipv6:2001:db8::7]:587'),
])
def test_nexthop(upstream, expected):
    assert relay_nexthop(upstream) == expected


@pytest.mark.parametrize('network, expected', [
    ('10.0.0.0/8', '10.0.0.0/8'),
    ('2001:db8::/32', '[2001:db8::]/32'),
    ('[::1]/128', '[::1]/128'),
    ('::1', '[::1]'),
])
def test_postfix_network(network, expected):
    assert relay_postfix_network(network) == expected


UPSTREAMS = [
    {'host': 'a.example.net', 'port': 587, 'tls': 'verify', 'username': 'ua', 'password': 'p:a ss'},
    {'host': 'b.example.net', 'port': 587, 'tls': 'encrypt', 'username': None, 'password': None},
    {'host': 'c.example.net', 'port': 465, 'username': 'uc', 'password': 'pc'},
]


def test_sasl_entries_use_the_nexthop_key_and_skip_upstreams_without_credentials():
    assert relay_sasl_entries(UPSTREAMS) == {
        '[a.example.net]:587': 'ua:p:a ss',
        '[c.example.net]:465': 'uc:pc',
    }


def test_tls_policy_entries_default_to_encrypt():
    assert relay_tls_policy_entries(UPSTREAMS) == {
        '[a.example.net]:587': 'verify',
        '[b.example.net]:587': 'encrypt',
        '[c.example.net]:465': 'encrypt',
    }


def test_generic_entries_sender_address_covers_local_domains_and_explicit_entries_win():
    entries = relay_generic_entries(
        {'@localhost': 'other@example.com'}, 'relay@example.com', ['host1', '$myhostname', 'localhost'])
    assert entries == {'@host1': 'relay@example.com', '@localhost': 'other@example.com'}


def test_generic_entries_empty_without_input():
    assert relay_generic_entries({}, None, ['host1']) == {}
