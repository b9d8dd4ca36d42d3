# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""OAuth2 upstreams in the relay model: each rule with an input it must refuse, and the state it wants.

An OAuth2 upstream is reached through the hop: Postfix sees the hop's listener on loopback, with the
client secret as its SASL password; the hop's config holds the upstream and the app, never the secret.
"""

from __future__ import annotations

import configparser
import functools
import os

import pytest

from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model
from ansible_collections.smarthost.postfix.tests.unit.plugins.module_utils import model_input

SECRET = 'O2 app secret:with spaces'
O365 = dict(host='smtp.office365.com', auth='oauth2', username='relay@example.com',
            oauth2=dict(tenant='contoso.onmicrosoft.com', client_id='00000000-0000-4000-8000-000000000001',
                        client_secret=SECRET))
OTHER = dict(host='smtp.provider.test', port=465, implicit_tls=True, tls='verify', username='other@example.com',
             oauth2=dict(token_url='https://idp.provider.test/oauth2/token', scope='https://mail.provider.test/smtp',
                         client_id='app-2', client_secret='second secret'))
PASSWORD = dict(host='smtp-b.example.net', username='relay-b', password='B-pass')
HOST = model.Host('3.7.11', 'relay1.example.com')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


relay = functools.partial(model_input.load, [O365])
one_error = functools.partial(model_input.one_error, [O365])


def with_oauth2(**changes):
    return dict(O365, oauth2=dict(O365['oauth2'], **changes))


# ---- Postfix's side: the hop's listener, the secret as SASL password ---------------------------------

def test_an_oauth2_upstream_is_the_hops_listener_with_the_secret_as_sasl_password():
    wanted = relay(upstreams=[O365, PASSWORD]).wanted(HOST)
    assert wanted.parameters['relayhost'] == '[127.0.0.1]:%d' % model.HOP_FIRST_PORT
    assert wanted.parameters['smtp_fallback_relay'] == '[smtp-b.example.net]:587'
    tables = dict((table.name, table) for table in wanted.tables)
    sasl = tables[model.SASL_MAP]
    assert sasl.secret and sasl.mode == '0600'
    assert sasl.entries == {'[127.0.0.1]:10587': 'relay@example.com:' + SECRET, '[smtp-b.example.net]:587': 'relay-b:B-pass'}
    # No TLS to the hop on loopback (the hop speaks TLS upstream); the password upstream keeps encrypt.
    assert tables[model.TLS_POLICY_MAP].entries == {'[127.0.0.1]:10587': 'none', '[smtp-b.example.net]:587': 'encrypt'}
    assert wanted.parameters['smtp_tls_security_level'] == 'encrypt'


def test_plaintext_to_the_hop_and_soft_bounce_and_few_connections():
    parameters = relay().wanted(HOST).parameters
    assert parameters['smtp_sasl_security_options'] == 'noanonymous'
    assert parameters['smtp_sasl_auth_soft_bounce'] == 'yes'
    assert parameters['smtp_destination_concurrency_limit'] == str(model.HOP_CONCURRENCY)
    assert relay(concurrency_limit=5).wanted(HOST).parameters['smtp_destination_concurrency_limit'] == '5'


def test_without_oauth2_nothing_changes_for_password_relays():
    wanted = model.load(dict(upstreams=[PASSWORD]), 'relay_').wanted(HOST)
    assert wanted.hop is None
    assert wanted.parameters['smtp_sasl_security_options'] == 'noanonymous, noplaintext'
    assert 'smtp_destination_concurrency_limit' not in wanted.parameters
    assert 'smtp_sasl_security_options' not in wanted.master_cf_block


def test_an_oauth2_route_beside_a_password_route_keeps_the_credentials_apart():
    wanted = relay(upstreams=[PASSWORD], routes=[
        dict(name='o365', senders=['@o365.example.com'], upstreams=[O365]),
        dict(name='other', senders=['@other.example.com'], upstreams=[OTHER]),
        dict(name='partner', senders=['@partner.example.com'], upstreams=[dict(PASSWORD, host='smtp-c.example.net')]),
    ]).wanted(HOST)
    tables = dict((table.name, table.entries) for table in wanted.tables)
    assert tables[model.SASL_MAP] == {'[smtp-b.example.net]:587': 'relay-b:B-pass'}
    assert tables['relay_route_o365_sasl'] == {'[127.0.0.1]:10587': 'relay@example.com:' + SECRET}
    assert tables['relay_route_other_sasl'] == {'[127.0.0.1]:10588': 'other@example.com:second secret'}
    assert tables['relay_route_partner_sasl'] == {'[smtp-c.example.net]:587': 'relay-b:B-pass'}
    assert tables[model.SENDER_ROUTES_MAP]['@o365.example.com'] == 'relay-o365:[127.0.0.1]:10587'
    # Plaintext mechanisms only for the transports of the hop; the default route and partner keep noplaintext.
    services = wanted.master_cf_block.split('relay-')
    assert [('smtp_sasl_security_options=noanonymous\n' in text, 'noanonymous,noplaintext' in text) for text in services[1:]] \
        == [(True, False), (True, False), (False, True)]
    assert wanted.parameters['smtp_sasl_security_options'] == 'noanonymous, noplaintext'
    # The route's implicit TLS is the hop's business: Postfix talks to the hop without wrappermode.
    assert '-o smtp_tls_wrappermode=no\n' in services[2]
    assert wanted.parameters['relay-o365_destination_concurrency_limit'] == str(model.HOP_CONCURRENCY)
    assert [u.nexthop for u in wanted.hop.upstreams] == ['[127.0.0.1]:10587', '[127.0.0.1]:10588']


# ---- the hop's files: the upstream and the app, never the secret --------------------------------------

def test_the_hops_config_has_one_listener_and_one_account_per_upstream_and_no_secret():
    hop = relay(upstreams=[O365], routes=[dict(name='other', senders=['@other.example.com'], upstreams=[OTHER])]).wanted(HOST).hop
    assert SECRET not in hop.config and 'second secret' not in hop.config
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(hop.config)
    assert config.sections() == ['SMTP-10587', 'relay@example.com', 'SMTP-10588', 'other@example.com', 'emailproxy']
    assert dict(config['SMTP-10587']) == dict(server_address='smtp.office365.com', server_port='587', server_starttls='True',
                                              local_address='127.0.0.1')
    assert config['SMTP-10588']['server_starttls'] == 'False'
    assert dict(config['relay@example.com']) == dict(
        token_url='https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token',
        oauth2_scope=model.MICROSOFT_SCOPE, oauth2_flow='client_credentials', client_id='00000000-0000-4000-8000-000000000001')
    assert config['other@example.com']['token_url'] == 'https://idp.provider.test/oauth2/token'
    assert config['emailproxy']['use_login_password_as_client_credentials_secret'] == 'True'
    assert config['emailproxy']['allow_catch_all_accounts'] == 'False'


def test_the_hops_unit_is_hardened_restarts_and_trusts_the_relays_ca_file():
    unit = relay(tls_ca_file='/etc/ssl/lab-ca.pem').wanted(HOST).hop.unit
    for line in ('User=smarthost-oauth2', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'CapabilityBoundingSet=',
                 'UMask=0077', 'RuntimeDirectory=smarthost-oauth2', 'Restart=always', 'PrivateTmp=yes',
                 'Environment=SSL_CERT_FILE=/etc/ssl/lab-ca.pem REQUESTS_CA_BUNDLE=/etc/ssl/lab-ca.pem',
                 'ExecStart=/opt/smarthost-oauth2/venv/bin/emailproxy --no-gui --config-file /etc/smarthost-oauth2/emailproxy.config '
                 '--cache-store /run/smarthost-oauth2/token-cache'):
        assert line + '\n' in unit
    assert 'ExecReload' not in unit.replace('# No ExecReload', '')


def test_the_role_ships_the_requirements_the_model_names_pinned_with_hashes():
    path = os.path.join(ROOT, 'roles', 'relay', 'files', model.HOP_REQUIREMENTS)
    with open(path) as handle:
        lines = [line for line in handle.read().splitlines() if line and not line.startswith('#')]
    assert lines and all(' --hash=sha256:' in line and '==' in line.split()[0] for line in lines)
    assert any(line.startswith('emailproxy==') for line in lines)


# ---- the rules, each refused with the field named before any host change -------------------------------

@pytest.mark.parametrize('changes, field, text', [
    (dict(client_secret=None), 'relay_upstreams[0].oauth2.client_secret', 'is required'),
    (dict(client_id=None), 'relay_upstreams[0].oauth2.client_id', 'is required'),
    (dict(client_id='bad id'), 'relay_upstreams[0].oauth2.client_id', 'is not a client id'),
    (dict(tenant=None), 'relay_upstreams[0].oauth2', 'set one of tenant'),
    (dict(token_url='https://idp.test/token'), 'relay_upstreams[0].oauth2', 'set one of tenant'),
    (dict(tenant='contoso/../x'), 'relay_upstreams[0].oauth2.tenant', 'is not a tenant'),
    (dict(tenant=None, token_url='http://idp.test/token', scope='s'), 'relay_upstreams[0].oauth2.token_url', 'is not an https URL'),
    (dict(tenant=None, token_url='https://idp.test/token?x=1', scope='s'), 'relay_upstreams[0].oauth2.token_url',
     'is not an https URL'),
    (dict(tenant=None, token_url='https://idp.test/token'), 'relay_upstreams[0].oauth2.scope', 'is required with token_url'),
    (dict(scope='a  b'), 'relay_upstreams[0].oauth2.scope', 'is not a scope'),
    (dict(flow='password'), 'relay_upstreams[0].oauth2.flow', 'is not one of client_credentials, service_account'),
    (dict(client_secret=' padded'), 'relay_upstreams[0].oauth2.client_secret', 'must not start or end with blanks'),
    (dict(certificate='x'), 'relay_upstreams[0].oauth2', 'unknown key(s) certificate'),
])
def test_bad_oauth2_settings_are_refused_naming_the_field(changes, field, text):
    message = one_error(upstreams=[with_oauth2(**changes)])
    assert message.startswith(field + ': ') and text in message, message
    assert SECRET not in message


@pytest.mark.parametrize('upstream, field, text', [
    (dict(O365, password='x'), 'relay_upstreams[0].password', 'has no password'),
    (dict(O365, username=None), 'relay_upstreams[0].username', 'is required with auth: oauth2'),
    (dict(O365, username='not-an-address'), 'relay_upstreams[0].username', 'is not a mail address'),
    (dict(O365, tls='may'), 'relay_upstreams[0].tls', 'needs TLS'),
    (dict(O365, tls='none'), 'relay_upstreams[0].tls', 'needs TLS'),
    (dict(O365, mx_lookup=True), 'relay_upstreams[0].mx_lookup', 'set mx_lookup: false'),
    (dict(O365, servername='other.example.com', tls='verify'), 'relay_upstreams[0].servername', 'leave servername unset'),
    (dict(O365, oauth2=None), 'relay_upstreams[0].oauth2', 'is required with auth: oauth2'),
    (dict(PASSWORD, auth='password', oauth2=O365['oauth2']), 'relay_upstreams[0].oauth2', 'is for auth: oauth2'),
    (dict(PASSWORD, auth='none'), 'relay_upstreams[0]', 'auth: none sends no credentials'),
    (dict(host='smtp-b.example.net', auth='password'), 'relay_upstreams[0]', 'auth: password needs username and password'),
    (dict(O365, auth='kerberos'), 'relay_upstreams[0].auth', 'is not one of none, password, oauth2'),
])
def test_bad_oauth2_upstreams_are_refused_naming_the_field(upstream, field, text):
    message = one_error(upstreams=[upstream])
    assert message.startswith(field + ': ') and text in message, message
    assert SECRET not in message


CONTROL = ['\x00', '\n', '\r', '\x7f', '\x85', '\u2028']


@pytest.mark.parametrize('char', CONTROL)
@pytest.mark.parametrize('name', ['client_id', 'client_secret', 'tenant', 'scope'])
def test_control_characters_in_oauth2_settings_are_refused_and_never_shown(name, char):
    value = dict(client_id='app', client_secret='Top' + char + 'Secret42', tenant='contoso', scope='a b')[name]
    if name != 'client_secret':
        value = value + char
    message = one_error(upstreams=[with_oauth2(**{name: value})])
    assert message.startswith('relay_upstreams[0].oauth2.%s: ' % name), message
    assert char not in message and 'Secret42' not in message


def test_auth_is_inferred_from_the_fields():
    upstreams = relay(upstreams=[dict(O365, auth=None), PASSWORD, dict(host='hub.example.net', port=25, tls='may')]).upstreams
    assert [u.auth for u in upstreams] == ['oauth2', 'password', 'none']


def test_one_upstream_per_mailbox():
    message = one_error(upstreams=[O365], routes=[dict(name='o365', senders=['@o.example.com'], upstreams=[
        dict(O365, host='smtp-2.office365.com')])])
    assert message.startswith('relay_routes[0].upstreams[0].username: ') and 'relay_upstreams[0]' in message


def test_a_password_upstream_beside_the_hop_needs_encryption():
    message = one_error(upstreams=[O365, dict(PASSWORD, tls='may')])
    assert message.startswith('relay_upstreams[1].tls: ') and 'relay_allow_plaintext_auth' in message
    assert relay(upstreams=[O365, dict(PASSWORD, tls='may')], allow_plaintext_auth=True).upstreams[1].tls == 'may'


def test_a_mechanism_filter_beside_the_hop_must_allow_plain():
    message = one_error(sasl_mechanisms=['LOGIN'])
    assert message.startswith('relay_sasl_mechanisms: ') and 'PLAIN' in message
    assert relay(sasl_mechanisms=['PLAIN', 'LOGIN']).wanted(HOST).parameters['smtp_sasl_mechanism_filter'] == 'PLAIN, LOGIN'


def test_implicit_tls_of_an_oauth2_upstream_does_not_mix_with_a_wrappermode_fallback():
    message = one_error(upstreams=[OTHER, dict(PASSWORD, port=465, implicit_tls=True)])
    assert message.startswith('relay_upstreams: ') and 'through the hop without TLS' in message


def test_the_hop_has_a_bounded_number_of_listeners():
    count = model.HOP_LAST_PORT - model.HOP_FIRST_PORT + 1
    routes = [dict(name='r%d' % index, senders=['@r%d.example.com' % index],
                   upstreams=[dict(O365, username='relay%d@example.com' % index)]) for index in range(count)]
    message = one_error(upstreams=[PASSWORD], routes=routes + [dict(name='last', senders=['@last.example.com'],
                                                                    upstreams=[dict(O365, username='last@example.com')])])
    assert message.startswith('relay_routes[%d].upstreams[0]: ' % count) and 'more than %d OAuth2 upstreams' % count in message


def test_absent_wants_no_hop():
    assert model.load(dict(state='absent'), 'relay_').wanted(HOST).hop is None


def test_probe_params_of_an_oauth2_upstream_go_to_the_hop_and_the_remote_is_kept():
    upstream = relay().upstreams[0]
    params = upstream.probe_params()
    assert (params['host'], params['port'], params['tls'], params['allow_plaintext_auth'], params['mechanisms']) \
        == ('127.0.0.1', 10587, 'none', True, ['PLAIN'])
    assert params['password'] == SECRET
    remote = upstream.remote.probe_params()
    assert (remote['host'], remote['port'], remote['username'], remote['password']) == ('smtp.office365.com', 587, None, None)
