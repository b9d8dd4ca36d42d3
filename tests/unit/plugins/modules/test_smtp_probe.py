# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smtp_probe against real SMTP servers on 127.0.0.1 (aiosmtpd, plus a scripted raw server)."""

from __future__ import annotations

import datetime
import json
import time

import pytest

from ansible_collections.smarthost.postfix.plugins.module_utils import _smtp as smtp_probe
from ansible_collections.smarthost.postfix.plugins.modules import smtp_probe as smtp_probe_module
from ansible_collections.smarthost.postfix.plugins.module_utils._relay_model import PROBE_OPTIONS
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules import smtp_probe_servers as servers
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules.module_args import patch_module_args

# aiosmtpd warns about the implicit-TLS server config, where TLS is in fact always on.
pytestmark = pytest.mark.filterwarnings('ignore:Requiring AUTH while not requiring TLS')

USERNAME, PASSWORD = servers.USERNAME, servers.PASSWORD
SASL_HINT = '(on Debian install libsasl2-modules, on RHEL cyrus-sasl-plain)'


@pytest.fixture(scope='module')
def smtpd(pki):
    """Start aiosmtpd servers on demand, one per configuration, stopped at the end of the module."""
    started = {}

    def get(kind):
        if kind not in started:
            tls = pki.server_context()
            configs = {
                # Like the sink role on 587: STARTTLS, AUTH only once encrypted.
                'starttls': dict(tls_context=tls, require_starttls=True, auth_required=True),
                'other_name': dict(tls_context=pki.server_context('other.probe.test')),
                # Like the sink on 465; aiosmtpd does not count implicit TLS for auth_require_tls.
                'implicit': dict(ssl_context=tls, auth_required=True, auth_require_tls=False),
                'plain': dict(auth_require_tls=False),
                'cram_only': dict(tls_context=tls, handler=servers.CramMD5Handler(),
                                  auth_exclude_mechanism=['PLAIN', 'LOGIN']),
                'no_auth': dict(tls_context=tls, handler=servers.Handler(hide_auth=True)),
                'ehlo_rejected': dict(handler=servers.Handler(reject_ehlo=True)),
            }
            started[kind] = servers.start_smtpd(**configs[kind])
        return started[kind].port

    yield get
    for controller in started.values():
        controller.stop()


@pytest.fixture
def scripted():
    """Start raw scripted servers; stopped after the test."""
    made = []

    def make(greeting, replies=None):
        server = servers.ScriptedServer(greeting, replies)
        made.append(server)
        return server.port

    yield make
    for server in made:
        server.stop()


def params(**overrides):
    """One probe's parameters: an upstream's options with the module's shared ones, as probe_all() makes them."""
    spec = dict(smtp_probe_module.argument_spec(), **PROBE_OPTIONS)
    values = {name: spec_.get('default') for name, spec_ in spec.items() if name != 'upstreams'}
    values.update(host='127.0.0.1', helo_name='probe.test')
    values.update(overrides)
    return values


def credentials(password=PASSWORD):
    return dict(username=USERNAME, password=password)


def probe(**overrides):
    return smtp_probe.SmtpProbe(params(**overrides)).run()


def probe_fails(**overrides):
    session = smtp_probe.SmtpProbe(params(**overrides))
    with pytest.raises(smtp_probe.ProbeFailed) as failure:
        session.run()
    return str(failure.value), session.facts


def failure_message(**overrides):
    return probe_fails(**overrides)[0]


# --- success paths -------------------------------------------------------------------------------


def test_starttls_verified_against_ca_file_and_authenticated(smtpd, pki):
    facts = probe(host='localhost', port=smtpd('starttls'), tls='verify', ca_file=pki.ca_file, **credentials())

    assert facts['banner'].startswith('220 ')
    assert facts['helo_name'] == 'probe.test'
    assert facts['starttls_offered'] is True
    assert facts['auth_mechanisms'] == ['LOGIN', 'PLAIN']
    assert 'AUTH LOGIN PLAIN' in facts['ehlo_capabilities']
    assert 'STARTTLS' not in facts['ehlo_capabilities'], 'capabilities must be the ones read after STARTTLS'
    assert (facts['auth_attempted'], facts['auth_mechanism'], facts['auth_succeeded']) == (True, 'PLAIN', True)
    tls = facts['tls']
    assert tls['mode'] == 'starttls'
    assert tls['verified'] is True
    assert tls['version'].startswith('TLSv1.')
    assert tls['cipher']
    assert tls['peer_subject'] == 'O=Probe Upstream, CN=localhost'
    assert tls['peer_issuer'] == 'O=Probe Test, CN=Probe Test CA'
    assert tls['peer_dns_names'] == ['localhost']
    assert tls['not_after'] == pki.server_not_after.strftime('%Y-%m-%dT%H:%M:%SZ')
    assert tls['days_left'] in (pki.server_days - 1, pki.server_days)


def test_login_mechanism_when_client_prefers_it(smtpd, pki):
    facts = probe(port=smtpd('starttls'), tls='encrypt', mechanisms=['LOGIN', 'PLAIN'], **credentials())
    assert (facts['auth_mechanism'], facts['auth_succeeded']) == ('LOGIN', True)


def test_cram_md5_when_both_sides_have_it(smtpd):
    facts = probe(port=smtpd('cram_only'), mechanisms=['CRAM-MD5'], **credentials())
    assert facts['auth_mechanisms'] == ['CRAM-MD5']
    assert (facts['auth_mechanism'], facts['auth_succeeded']) == ('CRAM-MD5', True)


def test_implicit_tls_with_secure_level(smtpd, pki):
    facts = probe(host='localhost', port=smtpd('implicit'), implicit_tls=True, tls='secure', ca_file=pki.ca_file,
                  **credentials())
    assert facts['tls']['mode'] == 'implicit'
    assert facts['tls']['verified'] is True
    assert facts['starttls_offered'] is False
    assert facts['auth_succeeded'] is True


def test_without_credentials_only_reports_mechanisms(smtpd):
    facts = probe(port=smtpd('starttls'))
    assert facts['auth_mechanisms'] == ['LOGIN', 'PLAIN']
    assert (facts['auth_attempted'], facts['auth_succeeded']) == (False, False)
    assert 'auth_mechanism' not in facts


@pytest.mark.parametrize('with_cryptography', [True, False], ids=['cryptography', 'stdlib-fallback'])
def test_unverified_session_still_reports_certificate(smtpd, pki, monkeypatch, with_cryptography):
    # getpeercert() is empty without verification, so both DER decoders must fill the same facts.
    if with_cryptography:
        assert smtp_probe.HAS_CRYPTOGRAPHY, 'cryptography is in the test venv'
    else:
        monkeypatch.setattr(smtp_probe, 'HAS_CRYPTOGRAPHY', False)
    tls = probe(port=smtpd('starttls'), tls='encrypt')['tls']
    assert tls['verified'] is False
    assert tls['peer_subject'] == 'O=Probe Upstream, CN=localhost'
    assert tls['peer_issuer'] == 'O=Probe Test, CN=Probe Test CA'
    assert tls['peer_dns_names'] == ['localhost']
    assert tls['not_after'] == pki.server_not_after.strftime('%Y-%m-%dT%H:%M:%SZ')


def test_certificate_details_are_optional(smtpd, monkeypatch):
    def broken(der):
        raise ValueError('unparsable certificate')

    monkeypatch.setattr(smtp_probe, '_cert_facts_from_cryptography', broken)
    tls = probe(port=smtpd('starttls'), tls='encrypt')['tls']
    assert tls['version'] and tls['peer_subject'] is None and tls['days_left'] is None


def test_may_upgrades_when_starttls_is_offered(smtpd):
    tls = probe(port=smtpd('starttls'), tls='may')['tls']
    assert (tls['mode'], tls['verified']) == ('starttls', False)


def test_may_stays_in_plaintext_without_starttls(smtpd):
    facts = probe(port=smtpd('plain'), tls='may')
    assert facts['starttls_offered'] is False
    assert facts['tls']['mode'] == 'none' and facts['tls']['version'] is None
    assert facts['auth_mechanisms'] == ['LOGIN', 'PLAIN']


def test_none_ignores_offered_starttls(smtpd):
    facts = probe(port=smtpd('starttls'), tls='none')
    assert facts['starttls_offered'] is True
    assert facts['tls']['mode'] == 'none'
    assert facts['auth_mechanisms'] == [], 'the server offers AUTH only over TLS'


def test_plaintext_auth_when_explicitly_allowed(smtpd):
    facts = probe(port=smtpd('plain'), tls='none', allow_plaintext_auth=True, **credentials())
    assert facts['auth_succeeded'] is True and facts['tls']['mode'] == 'none'


# --- failure branches ----------------------------------------------------------------------------


def test_connection_refused():
    port = servers.closed_port()
    msg, facts = probe_fails(port=port)
    assert msg == 'connection refused by 127.0.0.1:%d' % port
    assert 'banner' not in facts


def test_timeout_when_server_never_greets(scripted):
    port = scripted(None)
    started = time.monotonic()
    msg = failure_message(port=port, timeout=1)
    assert msg == 'timed out after 1 s connecting to 127.0.0.1:%d' % port
    assert time.monotonic() - started < 5


def test_timeout_in_a_later_step_names_it(scripted):
    port = scripted('220 slow.test ESMTP', {'EHLO': '250-slow.test\r\n250 STARTTLS', 'STARTTLS': ''})
    msg, facts = probe_fails(port=port, timeout=1)
    assert msg == 'timed out after 1 s waiting for 127.0.0.1:%d during STARTTLS' % port
    assert facts['starttls_offered'] is True


def test_greeting_refused(scripted):
    port = scripted('554 5.3.2 no service for you')
    msg = failure_message(port=port)
    assert msg == '127.0.0.1:%d refused the session: 554 5.3.2 no service for you' % port


def test_ehlo_rejected(smtpd):
    port = smtpd('ehlo_rejected')
    msg, facts = probe_fails(port=port)
    assert msg == '127.0.0.1:%d rejected EHLO: 550 5.7.1 EHLO refused by test server' % port
    assert facts['banner'].startswith('220 ')


def test_certificate_from_unknown_ca(smtpd, pki):
    msg = failure_message(host='localhost', port=smtpd('starttls'), tls='verify', ca_file=pki.other_ca_file)
    assert msg == 'TLS certificate verification failed for localhost: unable to get local issuer certificate'


def test_hostname_mismatch(smtpd, pki):
    msg = failure_message(host='localhost', port=smtpd('other_name'), tls='verify', ca_file=pki.ca_file)
    assert msg == ("TLS certificate verification failed for localhost: "
                   "Hostname mismatch, certificate is not valid for 'localhost'.")


def test_address_does_not_match_certificate(smtpd, pki):
    # The certificate names only 'localhost'; reaching the same server by address must fail at verify.
    msg = failure_message(port=smtpd('starttls'), tls='verify', ca_file=pki.ca_file)
    assert msg == ("TLS certificate verification failed for 127.0.0.1: "
                   "IP address mismatch, certificate is not valid for '127.0.0.1'.")


def test_missing_ca_file(smtpd, tmp_path):
    missing = str(tmp_path / 'nope.pem')
    msg = failure_message(port=smtpd('starttls'), tls='verify', ca_file=missing)
    assert msg == 'cannot load CA file %s: No such file or directory' % missing


def test_implicit_tls_against_a_starttls_port(smtpd):
    port = smtpd('starttls')
    msg = failure_message(port=port, implicit_tls=True, timeout=3)
    assert msg.startswith('TLS handshake with 127.0.0.1:%d failed: ' % port)
    assert msg.endswith('(does 127.0.0.1:%d speak implicit TLS? STARTTLS ports need implicit_tls=false)' % port)


@pytest.mark.parametrize('level', ['none', 'may'])
def test_implicit_tls_needs_encryption_level(level):
    msg = failure_message(port=servers.closed_port(), implicit_tls=True, tls=level)
    assert msg == 'implicit_tls=true needs tls=encrypt, verify or secure (got tls=%s)' % level


@pytest.mark.parametrize('level', ['encrypt', 'verify', 'secure'])
def test_starttls_not_offered(smtpd, level):
    port = smtpd('plain')
    msg, facts = probe_fails(port=port, tls=level)
    assert msg == '127.0.0.1:%d does not offer STARTTLS (tls=%s requires it)' % (port, level)
    assert facts['starttls_offered'] is False


def test_starttls_refused_by_server(scripted):
    port = scripted('220 x.test ESMTP', {'EHLO': '250-x.test\r\n250 STARTTLS', 'STARTTLS': '454 4.7.0 TLS not available'})
    msg = failure_message(port=port)
    assert msg == '127.0.0.1:%d answered STARTTLS with 454 4.7.0 TLS not available' % port


def test_server_hangs_up_during_starttls(scripted):
    port = scripted('220 x.test ESMTP', {'EHLO': '250-x.test\r\n250 STARTTLS', 'STARTTLS': None})
    msg = failure_message(port=port)
    assert msg == '127.0.0.1:%d closed the connection during STARTTLS' % port


@pytest.mark.parametrize('level', ['none', 'may'])
def test_refuses_plaintext_credentials(smtpd, level):
    port = smtpd('plain')
    msg, facts = probe_fails(port=port, tls=level, **credentials())
    assert msg == ('refusing to send the credentials of user relay-a to 127.0.0.1:%d without TLS (tls=%s); '
                   'set allow_plaintext_auth=true to allow it' % (port, level))
    assert facts['auth_attempted'] is False


def test_no_auth_offered_over_this_channel(smtpd):
    port = smtpd('no_auth')
    msg, facts = probe_fails(port=port, **credentials())
    assert msg == '127.0.0.1:%d offers no AUTH over this channel (TLS: starttls)' % port
    assert facts['tls']['mode'] == 'starttls'


def test_no_mechanism_in_common(smtpd):
    msg, facts = probe_fails(port=smtpd('cram_only'), **credentials())
    assert msg == 'no SASL mechanism in common: server offers CRAM-MD5, client supports PLAIN, LOGIN ' + SASL_HINT
    assert facts['auth_attempted'] is False


@pytest.mark.parametrize('mechanism', ['PLAIN', 'LOGIN', 'CRAM-MD5'])
def test_credentials_rejected(smtpd, mechanism):
    server = 'cram_only' if mechanism == 'CRAM-MD5' else 'starttls'
    msg, facts = probe_fails(port=smtpd(server), mechanisms=[mechanism], **credentials('wrong password'))
    assert msg == 'authentication rejected for user relay-a: 535 5.7.8 Authentication credentials invalid'
    assert (facts['auth_attempted'], facts['auth_succeeded']) == (True, False)


def test_server_hangs_up_during_auth(scripted):
    port = scripted('220 x.test ESMTP', {'EHLO': '250-x.test\r\n250 AUTH PLAIN', 'AUTH': None})
    msg = failure_message(port=port, tls='none', allow_plaintext_auth=True, **credentials())
    assert msg == '127.0.0.1:%d closed the connection during AUTH' % port


def test_unresolvable_and_unreachable_hosts_read_plainly():
    import socket
    p = params(host='smtp.invalid', port=25)
    gai = socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    assert smtp_probe.describe_network_error(gai, p, 'greeting') == 'cannot resolve smtp.invalid: Name or service not known'
    unreachable = OSError(101, 'Network is unreachable')
    assert (smtp_probe.describe_network_error(unreachable, p, 'greeting')
            == 'cannot connect to smtp.invalid:25: Network is unreachable')


# --- the module entry point ----------------------------------------------------------------------


def run_main(capsys, args):
    """Result of main(), plus everything it printed."""
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            smtp_probe_module.main()
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.out + captured.err


@pytest.mark.parametrize('check_mode', [False, True], ids=['normal', 'check-mode'])
def test_main_success_is_unchanged_and_hides_the_password(smtpd, pki, capsys, check_mode):
    upstream = dict(host='localhost', port=smtpd('starttls'), tls='verify', **credentials())
    result, output = run_main(capsys, dict(upstreams=[upstream], ca_file=pki.ca_file, helo_name='probe.test',
                                           _ansible_check_mode=check_mode))
    assert result.get('failed') is not True, result
    assert result['changed'] is False
    assert result['upstreams'][0]['auth_succeeded'] is True
    assert result['upstreams'][0]['tls']['verified'] is True
    assert PASSWORD not in output


def test_main_failure_keeps_facts_and_hides_the_password(smtpd, capsys):
    port = smtpd('starttls')
    upstream = dict(host='127.0.0.1', port=port, username=USERNAME, password=PASSWORD + 'x')
    result, output = run_main(capsys, dict(upstreams=[upstream], helo_name='probe.test'))
    assert result['failed'] is True
    assert result['changed'] is False
    assert result['msg'] == ('127.0.0.1:%d: authentication rejected for user relay-a: 535 5.7.8 Authentication '
                             'credentials invalid' % port)
    assert result['upstreams'][0]['auth_attempted'] is True and result['upstreams'][0]['tls']['mode'] == 'starttls'
    assert PASSWORD not in output


def test_main_accepts_a_relay_upstreams_entry_with_mx_lookup(smtpd, capsys):
    entry = dict(host='127.0.0.1', port=smtpd('starttls'), mx_lookup=False, tls='encrypt', implicit_tls=False)
    result = run_main(capsys, dict(upstreams=[entry], helo_name='probe.test'))[0]
    assert result.get('failed') is not True, result
    assert result['upstreams'][0]['starttls_offered'] is True


def test_main_rejects_non_positive_timeout(capsys):
    result = run_main(capsys, dict(upstreams=[dict(host='127.0.0.1')], timeout=0))[0]
    assert result['msg'] == 'timeout must be a positive number of seconds, got 0'


def test_days_left_counts_whole_days_and_goes_negative(monkeypatch):
    expired = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2, hours=1)

    class FakeSocket:
        def version(self):
            return 'TLSv1.3'

        def cipher(self):
            return ('TLS_AES_128_GCM_SHA256', 'TLSv1.3', 128)

    class FakeSMTP:
        sock = FakeSocket()

    monkeypatch.setattr(smtp_probe, 'certificate_facts', lambda sock: {'not_after': expired})
    tls = smtp_probe.tls_facts(FakeSMTP(), 'starttls', False)
    assert tls['days_left'] == -3
    assert tls['cipher'] == 'TLS_AES_128_GCM_SHA256'


# --- several upstreams in one module run --------------------------------------------------------


def test_upstreams_all_pass_and_keep_their_order(smtpd, pki, capsys):
    upstreams = [
        dict(host='localhost', port=smtpd('starttls'), mx_lookup=False, tls='verify', implicit_tls=False, **credentials()),
        dict(host='127.0.0.1', port=smtpd('implicit'), tls='encrypt', implicit_tls=True, **credentials()),
    ]
    result, output = run_main(capsys, dict(upstreams=upstreams, ca_file=pki.ca_file, helo_name='probe.test'))
    assert result.get('failed') is not True, result
    assert result['changed'] is False
    assert [(item['port'], item['failed'], item['tls']['mode']) for item in result['upstreams']] == [
        (upstreams[0]['port'], False, 'starttls'), (upstreams[1]['port'], False, 'implicit')]
    assert all(item['auth_succeeded'] for item in result['upstreams'])
    assert result['upstreams'][0]['tls']['verified'] is True
    assert PASSWORD not in output


def test_upstreams_a_failing_fallback_fails_the_module_and_says_which(smtpd, capsys):
    refused = servers.closed_port()
    upstreams = [
        dict(host='127.0.0.1', port=smtpd('starttls'), **credentials()),
        dict(host='127.0.0.1', port=refused, **credentials()),
        dict(host='127.0.0.1', port=smtpd('starttls'), **credentials(PASSWORD + '-wrong')),
    ]
    result, output = run_main(capsys, dict(upstreams=upstreams, helo_name='probe.test', timeout=5))
    assert result['failed'] is True
    assert [item['failed'] for item in result['upstreams']] == [False, True, True]
    assert 'msg' not in result['upstreams'][0]
    assert result['upstreams'][1]['msg'] == 'connection refused by 127.0.0.1:%s' % refused
    assert result['upstreams'][2]['msg'].startswith('authentication rejected for user %s: 535' % USERNAME)
    assert result['msg'].startswith('127.0.0.1:%s: connection refused' % refused)
    assert ('127.0.0.1:%s: authentication rejected' % upstreams[2]['port']) in result['msg']
    assert PASSWORD not in output


def test_upstreams_a_silent_upstream_times_out_without_hiding_the_others(smtpd, scripted, capsys):
    upstreams = [dict(host='127.0.0.1', port=scripted(None)), dict(host='127.0.0.1', port=smtpd('starttls'))]
    result = run_main(capsys, dict(upstreams=upstreams, helo_name='probe.test', timeout=1))[0]
    assert result['upstreams'][0]['msg'] == 'timed out after 1 s connecting to 127.0.0.1:%s' % upstreams[0]['port']
    assert result['upstreams'][1]['failed'] is False and result['upstreams'][1]['starttls_offered'] is True


def test_upstreams_entry_with_username_needs_a_password(capsys):
    result = run_main(capsys, dict(upstreams=[dict(host='smtp-a.example.net', port=587, username=USERNAME)]))[0]
    assert result['failed'] is True
    assert result['msg'] == 'smtp-a.example.net:587: username requires a password'


def test_upstreams_are_required(capsys):
    result = run_main(capsys, dict(timeout=5))[0]
    assert result['failed'] is True and 'missing required arguments: upstreams' in result['msg']


@pytest.mark.parametrize('mechanism', ['PLAIN', 'LOGIN'])
def test_non_ascii_credentials_are_sent_as_utf8(pki, mechanism):
    """RFC 4616: PLAIN is UTF-8; smtplib's own auth() would raise with part of the password in its message."""
    password = 'Pässwört-日本 x:y'
    controller = servers.start_smtpd(tls_context=pki.server_context(), auth_required=True,
                                     authenticator=servers.password_checker(USERNAME, password))
    try:
        facts = probe(port=controller.port, tls='encrypt', username=USERNAME, password=password, mechanisms=[mechanism])
    finally:
        controller.stop()
    assert facts['auth_succeeded'] and facts['auth_mechanism'] == mechanism


def test_non_ascii_password_rejected_without_a_trace_of_it(pki):
    controller = servers.start_smtpd(tls_context=pki.server_context(), auth_required=True)
    try:
        msg = failure_message(port=controller.port, tls='encrypt', username=USERNAME, password='Pässwört-日本')
    finally:
        controller.stop()
    assert msg.startswith('authentication rejected for user relay-a: 535')
    assert 'Pässwört' not in msg and 'ässw' not in msg


@pytest.mark.parametrize('echo', [
    lambda line: '535 5.7.8 Authentication failed: ' + line.strip(),
    # Only a piece of the base64 quoted, as some servers truncate.
    lambda line: '535 5.7.8 bad token ' + line.split()[-1][4:16],
    lambda line: '535 5.7.8 wrong password %s' % PASSWORD,
])
def test_a_reply_that_quotes_the_auth_exchange_is_withheld(scripted, echo):
    port = scripted('220 x.test ESMTP', {'EHLO': '250-x.test\r\n250 AUTH PLAIN', 'AUTH': echo})
    msg = failure_message(port=port, tls='none', allow_plaintext_auth=True, **credentials())
    assert msg == 'authentication rejected for user relay-a: 535 ' + smtp_probe.WITHHELD
    assert 'QUIT' not in msg


def test_a_plain_refusal_keeps_the_server_words(scripted):
    port = scripted('220 x.test ESMTP', {'EHLO': '250-x.test\r\n250 AUTH PLAIN', 'AUTH': '535 5.7.8 Username and Password not accepted'})
    msg = failure_message(port=port, tls='none', allow_plaintext_auth=True, **credentials())
    assert msg == 'authentication rejected for user relay-a: 535 5.7.8 Username and Password not accepted'


# --- SNI: the probe sends exactly what Postfix sends (model.sni_name) -------------------------------


@pytest.fixture
def sni_server(pki):
    """An implicit-TLS server that serves the 'localhost' certificate only to clients that send the SNI
    'localhost' (or 'alias.probe.test'); others get the certificate of 'other.probe.test'."""
    context = pki.sni_context({'localhost': 'localhost', 'alias.probe.test': 'localhost'})
    controller = servers.start_smtpd(ssl_context=context, auth_required=True, auth_require_tls=False)
    del context.sent[:]  # the controller's own check that the server is up
    yield controller.port, context.sent
    controller.stop()


def sni_probe(port, **overrides):
    return dict(port=port, implicit_tls=True, **overrides)


def test_verify_sends_the_host_name_in_sni(sni_server, pki):
    port, sent = sni_server
    facts = probe(host='localhost', tls='verify', ca_file=pki.ca_file, **sni_probe(port, **credentials()))
    assert facts['sni'] == 'localhost' and sent == ['localhost']
    assert facts['tls']['verified'] and facts['tls']['peer_dns_names'] == ['localhost'] and facts['auth_succeeded']


def test_encrypt_sends_no_sni_as_postfix_sends_none(sni_server):
    port, sent = sni_server
    facts = probe(host='localhost', tls='encrypt', **sni_probe(port))
    # Postfix without servername= in its TLS policy gets the certificate a client without SNI gets.
    assert facts['sni'] is None and sent == [None]
    assert facts['tls']['peer_dns_names'] == ['other.probe.test']


def test_no_sni_to_an_address(sni_server, pki):
    port, sent = sni_server
    msg, facts = probe_fails(tls='verify', ca_file=pki.ca_file, **sni_probe(port))
    assert facts['sni'] is None and sent == [None]
    assert msg.startswith('TLS certificate verification failed for 127.0.0.1')


def test_an_explicit_servername_is_sent_and_the_host_still_checked(sni_server, pki):
    port, sent = sni_server
    # SNI alias.probe.test gets the certificate of localhost, which is the host: the check passes.
    facts = probe(host='localhost', tls='verify', ca_file=pki.ca_file, **sni_probe(port, servername='alias.probe.test'))
    assert facts['sni'] == 'alias.probe.test' and sent == ['alias.probe.test'] and facts['tls']['verified']
    # SNI other.probe.test gets the certificate of other.probe.test, which does not name the host.
    msg = failure_message(host='localhost', tls='verify', ca_file=pki.ca_file, **sni_probe(port, servername='other.probe.test'))
    assert msg == ("TLS certificate verification failed for localhost: "
                   "Hostname mismatch, certificate is not valid for 'localhost'.")
    # encrypt with a servername sends it too (Postfix sends any servername= of the policy).
    facts = probe(host='localhost', tls='encrypt', **sni_probe(port, servername='localhost'))
    assert facts['sni'] == 'localhost' and sent[-1] == 'localhost'


def test_an_explicit_servername_does_not_replace_the_name_check_of_an_address(sni_server, pki):
    port, sent = sni_server
    msg = failure_message(tls='verify', ca_file=pki.ca_file, **sni_probe(port, servername='localhost'))
    assert sent == ['localhost'] and msg.startswith('TLS certificate verification failed for 127.0.0.1')


def test_the_chain_is_still_verified_when_the_name_check_is_ours(sni_server, pki):
    port, dummy = sni_server
    msg = failure_message(host='localhost', tls='verify', ca_file=pki.other_ca_file,
                          **sni_probe(port, servername='alias.probe.test'))
    assert msg.startswith('TLS certificate verification failed for localhost: ') and 'certificate' in msg


@pytest.mark.parametrize('names, host, matches', [
    ([('DNS', 'smtp.example.net')], 'smtp.example.net', True),
    ([('DNS', 'SMTP.Example.NET')], 'smtp.example.net.', True),
    ([('DNS', '*.example.net')], 'smtp.example.net', True),
    ([('DNS', '*.example.net')], 'a.smtp.example.net', False),
    ([('DNS', '*.example.net')], 'example.net', False),
    ([('DNS', 'other.example.net')], 'smtp.example.net', False),
    ([('IP Address', '192.0.2.25')], '192.0.2.25', True),
    ([('DNS', '192.0.2.25')], '192.0.2.25', False),
    ([('IP Address', '2001:DB8:0:0:0:0:0:1\n')], '2001:db8::1', True),
    ([], 'smtp.example.net', False),
])
def test_certificate_names_match_as_rfc_6125_says(names, host, matches):
    assert smtp_probe.certificate_matches({'subjectAltName': tuple(names)}, host) is matches


# --- a TLS client certificate (a route's tls_client_cert) ---------------------------------------------


def test_a_client_certificate_is_presented(pki):
    controller = servers.start_smtpd(ssl_context=pki.client_auth_context(), auth_require_tls=False)
    try:
        cert, key = pki.chain('relay.probe.test')
        facts = probe(port=controller.port, implicit_tls=True, client_cert_file=cert, client_key_file=key)
        assert facts['tls']['mode'] == 'implicit'
        # Without one the server ends the session (TLS 1.3 tells the client after the handshake).
        assert failure_message(port=controller.port, implicit_tls=True) == \
            '127.0.0.1:%d closed the connection during greeting' % controller.port
    finally:
        controller.stop()


def test_a_key_that_does_not_fit_its_certificate_fails_before_connecting(pki):
    cert = pki.chain('relay.probe.test')[0]
    other_key = pki.chain('other.probe.test')[1]
    msg = failure_message(port=servers.closed_port(), tls='encrypt', client_cert_file=cert, client_key_file=other_key)
    assert msg.startswith('cannot load the TLS client certificate and key: ') and 'PRIVATE' not in msg
