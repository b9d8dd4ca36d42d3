# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""OAuth2 upstreams whose credential is a key: Google's service account and Microsoft's certificate credentials.

The key goes into a 0600 file of the hop's; the SASL password Postfix sends the hop is derived from it (it only
keys the hop's token cache), and the hop's guard lets only Postfix and root reach the hop's ports. Keys are made
here (cryptography), and the key file the model writes is read back by google-auth, as the hop reads it.
"""

from __future__ import annotations

import configparser
import datetime
import functools
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model
from ansible_collections.smarthost.postfix.tests.unit.plugins.module_utils import model_input

HOST = model.Host('3.7.11', 'relay1.example.com')
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_KEY = _RSA.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode('ascii')
# A piece of the key's base64 that must never appear in a message.
KEY_PIECE = PRIVATE_KEY.splitlines()[5]
_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'relay app')])
_NOW = datetime.datetime.now(datetime.timezone.utc)
CERTIFICATE = x509.CertificateBuilder().subject_name(_NAME).issuer_name(_NAME).public_key(_RSA.public_key()).serial_number(
    1).not_valid_before(_NOW).not_valid_after(_NOW + datetime.timedelta(days=1)).sign(_RSA, hashes.SHA256()).public_bytes(
    serialization.Encoding.PEM).decode('ascii')
KEY = dict(type='service_account', project_id='relay-project', private_key_id='0123abcd', private_key=PRIVATE_KEY,
           client_email='relay@relay-project.iam.gserviceaccount.com', client_id='1234567890',
           token_uri='https://oauth2.googleapis.com/token', universe_domain='googleapis.com')
GOOGLE = dict(host='smtp.gmail.com', port=465, implicit_tls=True, tls='verify', auth='oauth2', username='relay@example.com',
              oauth2=dict(flow='service_account', service_account_key=json.dumps(KEY)))
CERT_APP = dict(host='smtp.office365.com', tls='verify', username='relay-c@example.com',
                oauth2=dict(tenant='contoso.onmicrosoft.com', client_id='00000000-0000-4000-8000-000000000003',
                            client_certificate=CERTIFICATE, client_key=PRIVATE_KEY))

relay = functools.partial(model_input.load, [GOOGLE])
one_error = functools.partial(model_input.one_error, [GOOGLE])
refused = functools.partial(model_input.refused, [GOOGLE])


def google(**changes):
    return dict(GOOGLE, oauth2=dict(GOOGLE['oauth2'], **changes))


def with_key(**changes):
    return google(service_account_key=json.dumps(dict(KEY, **changes)))


def cert_app(**changes):
    return dict(CERT_APP, oauth2=dict(CERT_APP['oauth2'], **changes))


def hop_files(hop):
    return dict((item.path, item) for item in hop.files)


# ---- service account --------------------------------------------------------------------------------------

def test_a_service_account_upstream_writes_its_key_into_a_hop_file_that_google_auth_reads():
    from google.oauth2 import service_account

    hop = relay().wanted(HOST).hop
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(hop.config)
    path = '/etc/smarthost-oauth2/10587.json'
    assert dict(config['relay@example.com']) == dict(token_url=KEY['token_uri'], oauth2_scope=model.GOOGLE_SCOPE,
                                                     oauth2_flow='service_account', client_id='file', client_secret=path)
    assert PRIVATE_KEY not in hop.config and KEY_PIECE not in hop.config
    key_file = hop_files(hop)[path]
    assert key_file.secret and key_file.hop_owned and key_file.mode == '0600'
    credentials = service_account.Credentials.from_service_account_info(json.loads(key_file.content))
    assert credentials.service_account_email == KEY['client_email'] and credentials._token_uri == KEY['token_uri']


def test_the_sasl_password_of_a_key_is_derived_from_it_and_is_none_of_its_pieces():
    wanted = relay().wanted(HOST)
    sasl = dict((table.name, table) for table in wanted.tables)[model.SASL_MAP].entries
    mailbox, dummy, login = sasl['[127.0.0.1]:10587'].partition(':')
    assert mailbox == 'relay@example.com' and len(login) >= 40
    assert login not in json.dumps(KEY) and wanted.hop.logins == [login]
    # Stable (idempotent), and another key gives another password (the SASL map changes: the hop restarts).
    assert relay().upstreams[0].password == login
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode('ascii')
    assert relay(upstreams=[with_key(private_key=other)]).upstreams[0].password != login


def test_a_service_account_key_may_be_given_as_a_dict_and_token_url_replaces_its_token_uri():
    upstream = relay(upstreams=[google(service_account_key=dict(KEY), token_url='https://idp.lab.test:8443/token',
                                       scope='https://mail.google.com/ https://example.test/x')]).upstreams[0]
    written = json.loads(upstream.hop_files()[0][1])
    assert written == dict(KEY, token_uri='https://idp.lab.test:8443/token')
    assert upstream.oauth2['token_url'] == 'https://idp.lab.test:8443/token'
    assert upstream.oauth2['scope'] == 'https://mail.google.com/ https://example.test/x'
    assert upstream.hop_files()[0][1] == relay(upstreams=[google(service_account_key=json.dumps(KEY), token_url=(
        'https://idp.lab.test:8443/token'))]).upstreams[0].hop_files()[0][1]


@pytest.mark.parametrize('upstream, field, text', [
    (google(service_account_key=None), 'oauth2.service_account_key', 'is required with flow: service_account'),
    (google(service_account_key='{"type": "service_account",'), 'oauth2.service_account_key', 'is not JSON'),
    (google(service_account_key='[1, 2]'), 'oauth2.service_account_key', 'must be a JSON object'),
    (google(service_account_key=json.dumps(dict(KEY, project_number=12))), 'oauth2.service_account_key',
     'every value must be a string, not those of project_number'),
    (google(service_account_key=json.dumps(dict((k, v) for k, v in KEY.items() if k != 'token_uri'))),
     'oauth2.service_account_key', 'lacks token_uri'),
    (with_key(type='authorized_user'), 'oauth2.service_account_key.type', "'authorized_user' is not service_account"),
    (with_key(client_email='not an address'), 'oauth2.service_account_key.client_email', 'is not a mail address'),
    (with_key(private_key='not a key'), 'oauth2.service_account_key.private_key', 'must be PEM: one PRIVATE KEY block'),
    (with_key(private_key=PRIVATE_KEY + 'trailing text\n'), 'oauth2.service_account_key.private_key', 'must be PEM'),
    (with_key(private_key=PRIVATE_KEY.replace('PRIVATE KEY', 'ENCRYPTED PRIVATE KEY')),
     'oauth2.service_account_key.private_key', 'must be PEM'),
    (with_key(token_uri='http://oauth2.googleapis.com/token'), 'oauth2.service_account_key.token_uri', 'is not an https URL'),
    (with_key(project_id='relay\nproject'), 'oauth2.service_account_key.project_id', 'must not contain a control character'),
    (google(token_url='https://idp.test/t?x=1'), 'oauth2.token_url', 'is not an https URL'),
    (google(client_id='app'), 'oauth2.client_id', 'is not used with flow: service_account'),
    (google(tenant='contoso'), 'oauth2.tenant', 'is not used with flow: service_account'),
    (google(client_secret='s'), 'oauth2.client_secret', 'is not used with flow: service_account'),
    (google(client_key=PRIVATE_KEY), 'oauth2.client_key', 'is not used with flow: service_account'),
])
def test_bad_service_account_settings_are_refused_naming_the_field_never_the_key(upstream, field, text):
    message = one_error(upstreams=[upstream])
    assert message.startswith('relay_upstreams[0].%s: ' % field) and text in message, message
    assert KEY_PIECE not in message and 'PRIVATE' not in message.replace('PRIVATE KEY block', '')


def test_a_control_character_in_the_key_is_refused_without_showing_it():
    bad = PRIVATE_KEY.replace(KEY_PIECE, KEY_PIECE[:10] + '\x00' + KEY_PIECE[11:])
    message = one_error(upstreams=[with_key(private_key=bad)])
    assert message.startswith('relay_upstreams[0].oauth2.service_account_key.private_key: must be PEM')
    assert '\x00' not in message and KEY_PIECE[:10] not in message


# ---- certificate credentials ----------------------------------------------------------------------------

def test_certificate_credentials_write_the_certificate_and_the_key_for_emailproxys_client_assertion():
    hop = relay(upstreams=[CERT_APP]).wanted(HOST).hop
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(hop.config)
    assert dict(config['relay-c@example.com']) == dict(
        token_url='https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token',
        oauth2_scope=model.MICROSOFT_SCOPE, oauth2_flow='client_credentials', client_id='00000000-0000-4000-8000-000000000003',
        jwt_certificate_path='/etc/smarthost-oauth2/10587.crt', jwt_key_path='/etc/smarthost-oauth2/10587.key')
    files = hop_files(hop)
    assert files['/etc/smarthost-oauth2/10587.key'].secret and files['/etc/smarthost-oauth2/10587.key'].content == PRIVATE_KEY
    assert not files['/etc/smarthost-oauth2/10587.crt'].secret and files['/etc/smarthost-oauth2/10587.crt'].mode == '0600'
    assert hop.logins == [relay(upstreams=[CERT_APP]).upstreams[0].password] and KEY_PIECE not in hop.logins[0]


@pytest.mark.parametrize('upstream, field, text', [
    (cert_app(client_secret='s3cret'), 'oauth2', 'set client_secret, or client_certificate and client_key'),
    (cert_app(client_key=None), 'oauth2.client_key', 'is required with client_certificate'),
    (cert_app(client_certificate=None), 'oauth2.client_certificate', 'is required with client_key'),
    (cert_app(client_certificate=PRIVATE_KEY), 'oauth2.client_certificate', 'must be PEM: one CERTIFICATE block'),
    (cert_app(client_certificate=CERTIFICATE + CERTIFICATE), 'oauth2.client_certificate', 'must be PEM: one CERTIFICATE'),
    (cert_app(client_key=CERTIFICATE), 'oauth2.client_key', 'must be PEM: one PRIVATE KEY or RSA PRIVATE KEY block'),
    (cert_app(client_key='text before\n' + PRIVATE_KEY), 'oauth2.client_key', 'must be PEM'),
    (cert_app(client_key=PRIVATE_KEY.replace('PRIVATE KEY', 'EC PRIVATE KEY')), 'oauth2.client_key', 'must be PEM'),
    (cert_app(service_account_key=json.dumps(KEY)), 'oauth2.service_account_key', 'is for flow: service_account'),
])
def test_bad_certificate_credentials_are_refused_naming_the_field_never_the_key(upstream, field, text):
    message = one_error(upstreams=[upstream])
    assert message.startswith('relay_upstreams[0].%s: ' % field) and text in message, message
    assert KEY_PIECE not in message and 's3cret' not in message


# ---- the guard --------------------------------------------------------------------------------------------

def test_the_guard_covers_every_listener_and_the_unit_loads_it_before_the_hop_starts():
    routes = [dict(name='o365', senders=['@o.example.com'], upstreams=[CERT_APP])]
    hop = relay(routes=routes).wanted(HOST).hop
    assert hop.ports == [10587, 10588]
    guard = hop_files(hop)[model.HOP_GUARD]
    assert not guard.hop_owned and guard.mode == '0644' and guard.content == hop.guard
    assert '\toif "lo" tcp dport { 10587, 10588 } meta skuid != { "postfix", 0 } reject with tcp reset\n' in hop.guard
    assert '\toif "lo" tcp sport { 10587, 10588 } meta skuid != "smarthost-oauth2" reject with tcp reset\n' in hop.guard
    assert hop.guard.index('delete table inet smarthost_oauth2_hop\n') < hop.guard.index('table inet smarthost_oauth2_hop {\n')
    assert 'ExecStartPre=+/usr/sbin/nft -f /etc/smarthost-oauth2/guard.nft\n' in hop.unit
    assert 'PartOf=nftables.service\n' in hop.unit and 'ExecStopPost' not in hop.unit
    assert hop.unit.index('ExecStartPre=') < hop.unit.index('ExecStart=')


def test_a_client_secret_upstream_is_guarded_too_and_keeps_its_secret_as_the_password():
    secret_app = dict(CERT_APP, oauth2=dict(tenant='contoso', client_id='app', client_secret='O2 secret'))
    hop = relay(upstreams=[secret_app]).wanted(HOST).hop
    assert hop.logins == [] and hop.upstreams[0].password == 'O2 secret'
    assert [item.path for item in hop.files] == [model.HOP_CONFIG, model.HOP_GUARD]
    assert 'tcp dport { 10587 }' in hop.guard
