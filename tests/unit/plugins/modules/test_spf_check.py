# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""spf_check against a real DNS server on 127.0.0.1 (spf_dns_server), never any other resolver."""

from __future__ import annotations

import json

import pytest
import spf as pyspf

from ansible_collections.smarthost.postfix.plugins.modules import spf_check
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules import spf_dns_server
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules.module_args import patch_module_args

# The upstream's outbound address in these tests, and one that no record lists.
UPSTREAM = '192.0.2.25'
STRANGER = '203.0.113.5'
UPSTREAM6 = '2001:db8:0:1::25'
# The name that %{l1-}.%{s1r-}.%{ir}.%{v}.%{h} gives for alerts-ops@local.test, UPSTREAM6 and smtp-a.example.net
# (in lower case, as the server notes its questions).
SENDER_NAME = 'ops.alerts.5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.smtp-a.example.net'


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
    'port.test': spf('v=spf1 a:example.com:8080 -all'),
    'redirect-all.test': spf('v=spf1 redirect=-all'),
    'exp.test': spf('v=spf1 -all exp=why.exp.test'),
    'why.exp.test': {'TXT': ['"%{i} may not send for %{d}"']},
    # Only the sender alerts-ops@local.test, HELO smtp-a.example.net and UPSTREAM6 build the name that exists.
    'local.test': spf('v=spf1 exists:%{l1-}.%{s1r-}.%{ir}.%{v}.%{h} -all'),
    SENDER_NAME: {'A': ['127.0.0.2']},
    'alias.test': {'CNAME': ['mail.a.test.']},
    'loop.alias.test': {'CNAME': ['loop.alias.test.']},
    # Over 255 characters, so published as two strings of one TXT record.
    'long.example.com': {'TXT': ['"v=spf1 ' + 'ip4:198.51.100.1 ' * 14 + '" "ip4:192.0.2.25 -all"']},
}


@pytest.fixture(scope='module')
def dns_server():
    server = spf_dns_server.ZoneServer(ZONE, servfail=['servfail.test'], silent=['silent.test'])
    yield server
    server.stop()


def check(dns_server, domain, ip=UPSTREAM, timeout=2.0, **kwargs):
    return spf_check.check_spf(domain, ip, nameservers=['127.0.0.1'], port=dns_server.port, timeout=timeout, **kwargs)


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
    dns_server.questions.clear()
    result = check(dns_server, 'redirect-with-all.test')[0]
    assert result['result'] == 'fail'
    assert result['matched'] == {'domain': 'redirect-with-all.test', 'term': '-all'}
    # pyspf counts a redirect= when it reads the record, used or not.
    assert result['dns_lookups'] == 1
    assert ('_spf.provider.test', 'TXT') not in dns_server.questions


@pytest.mark.parametrize('domain, message', [
    ('port.test', 'Invalid domain found (use FQDN): example.com:8080'),
    ('redirect-all.test', 'Invalid domain found (use FQDN): -all'),
], ids=['a-with-port', 'redirect-to-all'])
def test_terms_that_name_no_domain_are_permerror(dns_server, domain, message):
    result = check(dns_server, domain)[0]
    assert result['result'] == 'permerror'
    assert message in result['explanation']
    assert result['suggestion'] is not None


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


def test_sender_and_helo_reach_the_macros(dns_server):
    """%{l}, %{s} and %{h} expand from the sender and helo options (postmaster@DOMAIN and DOMAIN by default)."""
    result = check(dns_server, 'local.test', ip=UPSTREAM6, sender='alerts-ops@local.test', helo='smtp-a.example.net')[0]
    assert result['result'] == 'pass'
    assert (SENDER_NAME, 'A') in dns_server.questions
    assert check(dns_server, 'local.test', ip=UPSTREAM6)[0]['result'] == 'fail'


def test_ipv4_mapped_address_is_checked_as_ipv4(dns_server):
    result = check(dns_server, 'fail.test', ip='::ffff:192.0.2.25')[0]
    assert result['ip'] == UPSTREAM
    assert result['suggestion'] == 'v=spf1 ip4:198.51.100.1 ip4:192.0.2.25 -all'
    assert check(dns_server, 'pass.test', ip='::ffff:192.0.2.25')[0]['result'] == 'pass'


def test_fail_gives_the_domains_explanation(dns_server):
    result = check(dns_server, 'exp.test')[0]
    assert result['result'] == 'fail'
    assert result['receiver_explanation'] == '192.0.2.25 may not send for exp.test'
    assert "The domain asks receivers to say: '192.0.2.25 may not send for exp.test'." in result['explanation']
    assert check(dns_server, 'fail.test')[0]['receiver_explanation'] is None
    assert check(dns_server, 'pass.test')[0]['receiver_explanation'] is None


def test_more_than_ten_lookups_is_permerror(dns_server):
    result = check(dns_server, 'limit.test')[0]
    assert result['result'] == 'permerror'
    assert 'Too many DNS lookups' in result['explanation']
    assert result['record'].startswith('v=spf1 include:l1.limit.test')
    # The record is still reported and the address can still be added, next to the broken part.
    assert result['suggestion'].endswith('ip4:192.0.2.25 +all')


def test_include_loop_ends_at_the_lookup_limit(dns_server):
    assert check(dns_server, 'loop.test')[0]['result'] == 'permerror'


def test_more_than_two_void_lookups_is_permerror(dns_server):
    result = check(dns_server, 'void.test')[0]
    assert result['result'] == 'permerror'
    assert 'Void lookup limit of 2 exceeded' in result['explanation']


def test_two_records_is_permerror_without_suggestion(dns_server):
    result = check(dns_server, 'two.test')[0]
    assert result['result'] == 'permerror'
    assert result['record'] is None
    assert result['suggestion'] is None
    assert 'Two or more type TXT spf records found' in result['explanation']


def test_syntax_error_is_permerror(dns_server):
    result = check(dns_server, 'syntax.test')[0]
    assert result['result'] == 'permerror'
    assert 'Invalid IP4 address: ip4:192.0.2.300' in result['explanation']


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


def test_main_checks_the_domain_of_the_sender(dns_server, capsys):
    result = run_main(capsys, dict(sender='Alerts@Fail.Test', ip=UPSTREAM, nameservers=['127.0.0.1'],
                                   port=dns_server.port, timeout=2))
    assert result.get('failed') is not True, result
    assert result['domain'] == 'fail.test'
    assert result['result'] == 'fail'


@pytest.mark.parametrize('args, message', [
    (dict(domain='example.com', ip='192.0.2.256'), 'not an IPv4 or IPv6 address'),
    (dict(domain='example.com', ip=UPSTREAM, nameservers=['dns.example.com']), 'not an IP address'),
    (dict(domain='example.com', ip=UPSTREAM, timeout=0), 'more than 0 seconds'),
    (dict(domain='example.com', ip=UPSTREAM, port=0), 'port: 0 is not a port number'),
    (dict(domain='example .com', ip=UPSTREAM), "domain: 'example .com' is not a domain name"),
    (dict(domain='example.com\n', ip=UPSTREAM), 'domain:'),
    (dict(sender='alerts.example.com', ip=UPSTREAM), "sender: 'alerts.example.com' is not one address"),
    (dict(sender='a@b@example.com', ip=UPSTREAM), 'sender:'),
    (dict(sender='alerts\r@example.com', ip=UPSTREAM), 'sender:'),
    (dict(domain='example.net', sender='alerts@example.com', ip=UPSTREAM), "domain: 'example.net' is not the domain of sender"),
    (dict(domain='example.com', ip=UPSTREAM, helo='mail.example.com\t'), 'helo:'),
    (dict(ip=UPSTREAM), 'one of the following is required: domain, sender'),
], ids=['bad-ip', 'bad-nameserver', 'bad-timeout', 'bad-port', 'blank-in-domain', 'newline-in-domain',
        'sender-without-at', 'sender-with-two-at', 'control-in-sender', 'domain-not-of-sender', 'control-in-helo',
        'no-domain'])
def test_main_rejects_bad_input(capsys, args, message):
    result = run_main(capsys, args)
    assert result['failed'] is True
    assert message in result['msg']


@pytest.mark.parametrize('variable, library', [('DNSPYTHON_IMPORT_ERROR', 'dnspython'), ('PYSPF_IMPORT_ERROR', 'pyspf')])
def test_main_says_how_to_get_the_libraries(capsys, monkeypatch, variable, library):
    monkeypatch.setattr(spf_check, variable, 'Traceback: no module named ' + library)
    result = run_main(capsys, dict(domain='example.com', ip=UPSTREAM))
    assert result['failed'] is True
    assert 'Failed to import the required Python library (%s)' % library in result['msg']


def test_pyspf_gets_its_own_dns_back(dns_server):
    """The module's DNS reaches pyspf only while it evaluates, also when the evaluation raises."""
    original = pyspf.DNSLookup
    assert check(dns_server, 'pass.test')[0]['result'] == 'pass'
    assert pyspf.DNSLookup is original
    lookup = spf_check.DnsLookup(['127.0.0.1'], dns_server.port, 2.0)
    with pytest.raises(RuntimeError):
        with spf_check.pyspf_dns(lookup):
            assert pyspf.DNSLookup is lookup
            raise RuntimeError('evaluation failed')
    assert pyspf.DNSLookup is original


def test_lookup_hands_pyspf_aliases(dns_server):
    """Answers come as pyspf's DNSLookup gives them; a CNAME loop is handed over for pyspf to end."""
    lookup = spf_check.DnsLookup(['127.0.0.1'], dns_server.port, 2.0)
    assert sorted(lookup('mx.test', 'MX')) == [(('mx.test', 'MX'), (10, 'mx1.mx.test')), (('mx.test', 'MX'), (20, 'mx2.mx.test'))]
    assert lookup('alias.test', 'A') == [(('alias.test', 'CNAME'), 'mail.a.test'), (('mail.a.test', 'A'), '192.0.2.30')]
    assert lookup('loop.alias.test', 'A') == [(('loop.alias.test', 'CNAME'), 'loop.alias.test')]
    assert lookup('missing.test', 'TXT') == []
    with pytest.raises(pyspf.TempError):
        lookup('servfail.test', 'A')
