# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""spf_check against a real DNS server on 127.0.0.1 (spf_dns_server), never any other resolver."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_PATH = os.path.join(HERE, '..', '..', '..', '..', 'plugins', 'modules', 'spf_check.py')


def _load(name, path):
    # Loaded by path so the tests run with or without a collection loader on sys.path.
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


spf_check = _load('spf_check_under_test', MODULE_PATH)
spf_dns_server = _load('spf_dns_server', os.path.join(HERE, 'spf_dns_server.py'))

# The upstream's outbound address in these tests, and one that no record lists.
UPSTREAM = '192.0.2.25'
STRANGER = '203.0.113.5'
UPSTREAM6 = '2001:db8:0:1::25'


def spf(text):
    return {'TXT': ['"%s"' % text]}


ZONE = {
    'pass.test': spf('v=spf1 ip4:192.0.2.0/24 -all'),
    'fail.test': spf('v=spf1 ip4:198.51.100.1 -all'),
    'soft.test': dict(spf('v=spf1 mx ~all'), MX=['10 mx.soft.test.']),
    'mx.soft.test': {'A': ['198.51.100.7']},
    'neutral.test': spf('v=spf1 ip4:198.51.100.1'),
    'denied-first.test': spf('v=spf1 -ip4:192.0.2.25 +all'),
    # A domain with TXT records, none of them SPF.
    'nospf.test': {'TXT': ['"site-verification=abc123"', '"v=spf10 not-spf"']},
    'include.test': spf('v=spf1 include:_spf.provider.test -all'),
    '_spf.provider.test': spf('v=spf1 ip4:192.0.2.16/28 ~all'),
    'redirect.test': spf('v=spf1 redirect=_spf.provider.test'),
    'redirect-with-all.test': spf('v=spf1 redirect=_spf.provider.test -all'),
    'a.test': dict(spf('v=spf1 a a:mail.a.test/29 -all'), A=['198.51.100.9']),
    'mail.a.test': {'A': ['192.0.2.30']},
    'mx.test': dict(spf('v=spf1 mx -all'), MX=['20 mx2.mx.test.', '10 mx1.mx.test.']),
    'mx1.mx.test': {'A': ['198.51.100.10']},
    'mx2.mx.test': {'A': ['192.0.2.25'], 'AAAA': ['2001:db8:0:1::25']},
    'mxcidr.test': dict(spf('v=spf1 mx:mx.test/24 -all')),
    'ip6.test': spf('v=spf1 ip6:2001:db8::/32 -all'),
    'a6.test': dict(spf('v=spf1 a//64 -all'), AAAA=['2001:db8:0:1::1']),
    'macro.test': spf('v=spf1 exists:%{ir}.%{v}._spf.%{d2} -all'),
    '25.2.0.192.in-addr._spf.macro.test': {'A': ['127.0.0.2']},
    # Eleven includes: the eleventh DNS-querying term breaks the limit of ten.
    'limit.test': spf('v=spf1 ' + ' '.join('include:l%d.limit.test' % n for n in range(1, 12)) + ' +all'),
    **{'l%d.limit.test' % n: spf('v=spf1 ?all') for n in range(1, 12)},
    'loop.test': spf('v=spf1 include:loop.test -all'),
    'void.test': spf('v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test +all'),
    'two.test': {'TXT': ['"v=spf1 ip4:192.0.2.25 -all"', '"v=spf1 -all"']},
    'syntax.test': spf('v=spf1 ip4:192.0.2.300 -all'),
    'include-none.test': spf('v=spf1 include:nospf.test -all'),
    'include-broken.test': spf('v=spf1 include:servfail.test -all'),
    # Over 255 characters, so published as two strings of one TXT record.
    'long.example.com': {'TXT': ['"v=spf1 ' + 'ip4:198.51.100.1 ' * 14 + '" "ip4:192.0.2.25 -all"']},
}


@pytest.fixture(scope='module')
def dns_server():
    server = spf_dns_server.ZoneServer(ZONE, servfail=['servfail.test'], silent=['silent.test'])
    yield server
    server.stop()


def check(dns_server, domain, ip=UPSTREAM, timeout=2.0):
    client = spf_check.DnsClient(['127.0.0.1'], dns_server.port, timeout)
    return spf_check.check_spf(client, domain, ip)


def test_pass_via_ip4_needs_no_suggestion(dns_server):
    result, warnings = check(dns_server, 'pass.test')
    assert result['result'] == 'pass'
    assert result['permitted'] is True
    assert result['record'] == 'v=spf1 ip4:192.0.2.0/24 -all'
    assert result['matched'] == {'domain': 'pass.test', 'term': 'ip4:192.0.2.0/24'}
    assert result['suggestion'] is None
    assert result['explanation'].startswith('pass.test permits 192.0.2.25')
    assert warnings == []


def test_fail_suggests_the_address_before_all(dns_server):
    result = check(dns_server, 'fail.test')[0]
    assert result['result'] == 'fail'
    assert result['permitted'] is False
    assert result['matched'] == {'domain': 'fail.test', 'term': '-all'}
    assert result['suggestion'] == 'v=spf1 ip4:198.51.100.1 ip4:192.0.2.25 -all'
    assert 'may reject' in result['explanation']


def test_softfail_via_mx_that_lists_another_host(dns_server):
    result = check(dns_server, 'soft.test')[0]
    assert result['result'] == 'softfail'
    assert result['suggestion'] == 'v=spf1 mx ip4:192.0.2.25 ~all'
    assert result['dns_lookups'] == 1


def test_no_match_is_neutral_and_the_address_is_appended(dns_server):
    result = check(dns_server, 'neutral.test')[0]
    assert result['result'] == 'neutral'
    assert result['matched'] is None
    assert result['suggestion'] == 'v=spf1 ip4:198.51.100.1 ip4:192.0.2.25'


def test_suggestion_goes_before_the_term_that_denies(dns_server):
    result = check(dns_server, 'denied-first.test')[0]
    assert result['result'] == 'fail'
    assert result['suggestion'] == 'v=spf1 ip4:192.0.2.25 -ip4:192.0.2.25 +all'


@pytest.mark.parametrize('domain', ['nospf.test', 'missing.test'], ids=['other-txt-only', 'nxdomain'])
def test_none_suggests_a_new_record(dns_server, domain):
    result = check(dns_server, domain)[0]
    assert result['result'] == 'none'
    assert result['record'] is None
    assert result['permitted'] is False
    assert result['suggestion'] == 'v=spf1 ip4:192.0.2.25 ~all'
    assert 'no SPF record' in result['explanation']


def test_include_that_passes_matches(dns_server):
    result = check(dns_server, 'include.test')[0]
    assert result['result'] == 'pass'
    assert result['matched'] == {'domain': 'include.test', 'term': 'include:_spf.provider.test'}


def test_include_that_softfails_does_not_match(dns_server):
    result = check(dns_server, 'include.test', ip=STRANGER)[0]
    assert result['result'] == 'fail'
    assert result['matched'] == {'domain': 'include.test', 'term': '-all'}
    assert result['suggestion'] == 'v=spf1 include:_spf.provider.test ip4:203.0.113.5 -all'


def test_redirect_takes_the_target_result(dns_server):
    assert check(dns_server, 'redirect.test')[0]['result'] == 'pass'
    result = check(dns_server, 'redirect.test', ip=STRANGER)[0]
    assert result['result'] == 'softfail'
    assert result['matched'] == {'domain': '_spf.provider.test', 'term': '~all'}
    # The suggestion edits the domain's own record, ahead of the redirect.
    assert result['suggestion'] == 'v=spf1 ip4:203.0.113.5 redirect=_spf.provider.test'
    assert result['dns_lookups'] == 1


def test_redirect_is_ignored_when_the_record_has_all(dns_server):
    result = check(dns_server, 'redirect-with-all.test')[0]
    assert result['result'] == 'fail'
    assert result['dns_lookups'] == 0


def test_a_mechanism_with_domain_and_cidr(dns_server):
    result = check(dns_server, 'a.test')[0]
    assert result['result'] == 'pass'
    assert result['matched']['term'] == 'a:mail.a.test/29'
    assert result['dns_lookups'] == 2
    assert check(dns_server, 'a.test', ip='192.0.2.50')[0]['result'] == 'fail'


def test_mx_mechanism_checks_every_exchange(dns_server):
    result = check(dns_server, 'mx.test')[0]
    assert result['result'] == 'pass'
    assert result['matched']['term'] == 'mx'
    assert check(dns_server, 'mxcidr.test', ip='192.0.2.200')[0]['result'] == 'pass'
    assert check(dns_server, 'mx.test', ip='192.0.2.200')[0]['result'] == 'fail'


def test_ipv6_address(dns_server):
    assert check(dns_server, 'ip6.test', ip='2001:db8:ffff::1')[0]['result'] == 'pass'
    assert check(dns_server, 'a6.test', ip=UPSTREAM6)[0]['result'] == 'pass'
    assert check(dns_server, 'mx.test', ip=UPSTREAM6)[0]['result'] == 'pass'
    result = check(dns_server, 'fail.test', ip='2001:DB8::25')[0]
    assert result['ip'] == '2001:db8::25'
    assert result['suggestion'] == 'v=spf1 ip4:198.51.100.1 ip6:2001:db8::25 -all'


def test_ipv4_address_against_ipv6_only_record(dns_server):
    result = check(dns_server, 'ip6.test')[0]
    assert result['result'] == 'fail'
    assert result['suggestion'] == 'v=spf1 ip6:2001:db8::/32 ip4:192.0.2.25 -all'


def test_exists_with_macros(dns_server):
    assert check(dns_server, 'macro.test')[0]['result'] == 'pass'
    assert ('25.2.0.192.in-addr._spf.macro.test', 'A') in dns_server.questions
    assert check(dns_server, 'macro.test', ip=STRANGER)[0]['result'] == 'fail'


def test_macro_expansion_rules(dns_server):
    evaluator = spf_check.SpfEvaluator(None, UPSTREAM6, 'example.com', 'mail.example.com')
    assert evaluator.expand('%{ir}.%{v}.%{l1r-}.%{h}', 'sub.example.com') == (
        '5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.postmaster.mail.example.com')
    assert evaluator.expand('%{d2}', 'a.b.example.com') == 'example.com'
    for broken in ('%{d0}', '%{c}.example.com', '%x.example.com', '%{d'):
        with pytest.raises(spf_check.SpfError) as error:
            evaluator.expand(broken, 'example.com')
        assert error.value.result == 'permerror'


def test_more_than_ten_lookups_is_permerror(dns_server):
    result = check(dns_server, 'limit.test')[0]
    assert result['result'] == 'permerror'
    assert 'more than 10 DNS lookups' in result['explanation']
    assert result['record'].startswith('v=spf1 include:l1.limit.test')
    # The record is still reported and the address can still be added, next to the broken part.
    assert result['suggestion'].endswith('ip4:192.0.2.25 +all')


def test_include_loop_ends_at_the_lookup_limit(dns_server):
    assert check(dns_server, 'loop.test')[0]['result'] == 'permerror'


def test_more_than_two_void_lookups_is_permerror(dns_server):
    result = check(dns_server, 'void.test')[0]
    assert result['result'] == 'permerror'
    assert 'returned nothing' in result['explanation']


def test_two_records_is_permerror_without_suggestion(dns_server):
    result = check(dns_server, 'two.test')[0]
    assert result['result'] == 'permerror'
    assert result['record'] is None
    assert result['suggestion'] is None
    assert 'publishes 2 SPF records' in result['explanation']


def test_syntax_error_is_permerror(dns_server):
    result = check(dns_server, 'syntax.test')[0]
    assert result['result'] == 'permerror'
    assert "'ip4:192.0.2.300' is not a valid SPF term" in result['explanation']


def test_include_of_a_domain_without_spf_is_permerror(dns_server):
    assert check(dns_server, 'include-none.test')[0]['result'] == 'permerror'


def test_record_split_into_several_strings(dns_server):
    result = check(dns_server, 'long.example.com')[0]
    assert len(result['record']) > 255
    assert result['result'] == 'pass'


def test_server_failure_is_temperror(dns_server):
    result = check(dns_server, 'servfail.test')[0]
    assert result['result'] == 'temperror'
    assert 'SERVFAIL' in result['explanation']
    assert result['suggestion'] is None
    assert check(dns_server, 'include-broken.test')[0]['result'] == 'temperror'


def test_timeout_is_temperror(dns_server):
    result = check(dns_server, 'silent.test', timeout=0.5)[0]
    assert result['result'] == 'temperror'
    assert 'within the timeout' in result['explanation']


def run_main(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            spf_check.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize('check_mode', [False, True], ids=['normal', 'check-mode'])
def test_main_reports_without_changing(dns_server, capsys, check_mode):
    result = run_main(capsys, dict(domain='Fail.Test.', ip=UPSTREAM, nameservers=['127.0.0.1'],
                                   port=dns_server.port, timeout=2, _ansible_check_mode=check_mode))
    assert result.get('failed') is not True, result
    assert result['changed'] is False
    assert result['domain'] == 'fail.test'
    assert result['result'] == 'fail'
    assert result['suggestion'] == 'v=spf1 ip4:198.51.100.1 ip4:192.0.2.25 -all'


def test_main_warns_about_ptr(dns_server, capsys):
    dns_server.records['ptr.test'] = spf('v=spf1 ptr -all')
    try:
        result = run_main(capsys, dict(domain='ptr.test', ip=UPSTREAM, nameservers=['127.0.0.1'],
                                       port=dns_server.port, timeout=2))
    finally:
        del dns_server.records['ptr.test']
    assert result['result'] == 'fail'
    # ansible-core 2.19 returns warnings as structured events, older versions as strings.
    assert "the 'ptr' mechanism" in json.dumps(result['warnings'])


@pytest.mark.parametrize('args, message', [
    (dict(domain='example.com', ip='192.0.2.256'), 'not an IPv4 or IPv6 address'),
    (dict(domain='example.com', ip=UPSTREAM, nameservers=['dns.example.com']), 'not an IP address'),
    (dict(domain='example.com', ip=UPSTREAM, timeout=0), 'more than 0 seconds'),
], ids=['bad-ip', 'bad-nameserver', 'bad-timeout'])
def test_main_rejects_bad_input(capsys, args, message):
    result = run_main(capsys, args)
    assert result['failed'] is True
    assert message in result['msg']


def test_main_says_how_to_get_dnspython(capsys, monkeypatch):
    monkeypatch.setattr(spf_check, 'DNSPYTHON_IMPORT_ERROR', 'Traceback: no module named dns')
    result = run_main(capsys, dict(domain='example.com', ip=UPSTREAM))
    assert result['failed'] is True
    assert 'dnspython' in result['msg']
