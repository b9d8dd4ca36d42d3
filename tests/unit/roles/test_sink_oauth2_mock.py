# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sink's mock OAuth2 token endpoint (roles/sink/files/sink_oauth2_mock.py), served over HTTPS on
loopback with a CA made here, asked as the real clients ask: urllib with a form (as emailproxy does for
client_credentials) and google-auth's service account credentials (jwt-bearer)."""

from __future__ import annotations

import datetime
import importlib.util
import ipaddress
import json
import os
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from passlib.hash import sha512_crypt

google_auth = pytest.importorskip('google.oauth2.service_account')
google_requests = pytest.importorskip('google.auth.transport.requests')
google_exceptions = pytest.importorskip('google.auth.exceptions')

MOCK_PATH = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'roles', 'sink', 'files', 'sink_oauth2_mock.py')
SECRET = 'lab client secret: with spaces'
TENANT = 'lab-tenant.test'
MS_SCOPE = 'https://outlook.office365.com/.default'
GOOGLE_SCOPE = 'https://mail.google.com/'
LIFETIME = 60


def _load_mock():
    spec = importlib.util.spec_from_file_location('sink_oauth2_mock', MOCK_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mock = _load_mock()


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _certificates(directory):
    """A CA and a server certificate for 127.0.0.1 signed by it; returns (ca file, key file, cert file)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'test CA')])
    # With the key identifiers and key usages that Python 3.13's default TLS context (VERIFY_X509_STRICT)
    # requires, as the sink's own certificates (community.crypto) have them.
    ca_key_id = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_key_id, critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')]))
              .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(2).not_valid_before(now)
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    files = []
    for name, data in (('ca.pem', ca.public_bytes(serialization.Encoding.PEM)), ('server.key', _pem(server_key)),
                       ('server.pem', server.public_bytes(serialization.Encoding.PEM))):
        path = os.path.join(directory, name)
        with open(path, 'wb') as handle:
            handle.write(data)
        files.append(path)
    return files


class Clock(object):
    def __init__(self):
        import time
        self.offset = 0
        self._time = time.time

    def __call__(self):
        return self._time() + self.offset


@pytest.fixture(scope='module')
def service_account_key():
    return _key()


@pytest.fixture(scope='module')
def app_certificate():
    """An app's key and its self-signed certificate (as uploaded to an app registration)."""
    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'relay app')])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(3).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    return key, certificate


@pytest.fixture()
def endpoint(tmp_path, service_account_key, app_certificate):
    ca_file, key_file, cert_file = _certificates(str(tmp_path))
    config = {
        'address': '127.0.0.1', 'port': 0, 'base_url': 'https://127.0.0.1:0', 'token_lifetime': LIFETIME,
        'clients': [
            {'client_id': 'app-1', 'tenant': TENANT, 'scope': MS_SCOPE, 'mailbox': 'relay-o@example.com',
             'secret_hash': sha512_crypt.using(rounds=5000).hash(SECRET)},
            {'client_id': 'relay@project.iam.test', 'scope': GOOGLE_SCOPE, 'mailbox': 'relay-g@example.com',
             'public_key': service_account_key.public_key().public_bytes(
                 serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()},
            {'client_id': 'app-cert', 'tenant': TENANT, 'scope': MS_SCOPE, 'mailbox': 'relay-c@example.com',
             'certificate': app_certificate[1].public_bytes(serialization.Encoding.PEM).decode()},
        ],
    }
    lines = []
    clock = Clock()
    server = mock.serve(config, key_file, cert_file, log=lines.append, now=clock)
    port = server.server_address[1]
    # The base URL (issuer, Google's audience) names the port the test server got.
    server.RequestHandlerClass.issuer.base_url = 'https://127.0.0.1:%d' % port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    context = ssl.create_default_context(cafile=ca_file)
    yield dict(url='https://127.0.0.1:%d' % port, context=context, ca_file=ca_file, log=lines, clock=clock,
               clients=server.RequestHandlerClass.issuer.clients)
    server.shutdown()
    server.server_close()


def _post(endpoint, path, **form):
    request = urllib.request.Request(endpoint['url'] + path, data=urllib.parse.urlencode(form).encode())
    try:
        with urllib.request.urlopen(request, context=endpoint['context'], timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _client_credentials(endpoint, tenant=TENANT, **overrides):
    form = dict(grant_type='client_credentials', client_id='app-1', client_secret=SECRET, scope=MS_SCOPE)
    form.update(overrides)
    return _post(endpoint, '/%s/oauth2/v2.0/token' % tenant, **form)


def _introspect(endpoint, token):
    return _post(endpoint, '/introspect', token=token)


def _google_credentials(endpoint, key, subject='relay-g@example.com', scope=GOOGLE_SCOPE):
    info = {
        'type': 'service_account', 'client_email': 'relay@project.iam.test', 'private_key_id': 'k1',
        'private_key': _pem(key).decode(), 'token_uri': endpoint['url'] + '/token', 'project_id': 'project',
    }
    credentials = google_auth.Credentials.from_service_account_info(info).with_scopes([scope]).with_subject(subject)
    session = __import__('requests').Session()
    # The environment's REQUESTS_CA_BUNDLE would win over session.verify.
    session.trust_env = False
    session.verify = endpoint['ca_file']
    return credentials, google_requests.Request(session)


def test_client_credentials_token_is_active_for_the_mailbox_until_it_expires(endpoint):
    status, body = _client_credentials(endpoint)
    assert status == 200 and body['token_type'] == 'Bearer' and body['expires_in'] == LIFETIME
    status, info = _introspect(endpoint, body['access_token'])
    assert status == 200 and info['active'] is True and info['username'] == 'relay-o@example.com'
    assert info['client_id'] == 'app-1'
    endpoint['clock'].offset = LIFETIME + 1
    assert _introspect(endpoint, body['access_token']) == (200, {'active': False})
    assert any('expired' in line for line in endpoint['log'])


@pytest.mark.parametrize('tenant, overrides, status, error', [
    (TENANT, dict(client_secret='wrong'), 401, 'invalid_client'),
    ('other-tenant.test', {}, 400, 'invalid_request'),
    (TENANT, dict(scope='https://graph.microsoft.com/.default'), 400, 'invalid_scope'),
    (TENANT, dict(client_id='app-2'), 400, 'unauthorized_client'),
    (TENANT, dict(grant_type='password'), 400, 'unsupported_grant_type'),
    # A service account cannot use a client secret.
    (TENANT, dict(client_id='relay@project.iam.test'), 400, 'unauthorized_client'),
])
def test_client_credentials_refusals(endpoint, tenant, overrides, status, error):
    reply_status, body = _client_credentials(endpoint, tenant, **overrides)
    assert (reply_status, body['error']) == (status, error)
    assert any(line.startswith('refused token request') for line in endpoint['log'])


def test_revoked_client_gets_no_token_and_its_tokens_turn_inactive_until_restored(endpoint):
    token = _client_credentials(endpoint)[1]['access_token']
    endpoint['clients']['app-1']['revoked'] = True
    status, body = _client_credentials(endpoint)
    assert (status, body['error']) == (401, 'invalid_client')
    assert _introspect(endpoint, token) == (200, {'active': False})
    endpoint['clients']['app-1']['revoked'] = False
    assert _introspect(endpoint, token)[1]['active'] is True
    assert _client_credentials(endpoint)[0] == 200


def test_tokens_of_another_issuer_are_inactive(endpoint):
    import jwt
    foreign = jwt.encode({'iss': endpoint['url'], 'sub': 'relay-o@example.com', 'azp': 'app-1', 'jti': 'x',
                          'exp': 9999999999, 'iat': 0, 'scp': MS_SCOPE}, _pem(_key()), algorithm='RS256')
    assert _introspect(endpoint, foreign) == (200, {'active': False})
    assert _introspect(endpoint, 'not a token') == (200, {'active': False})


def test_service_account_jwt_bearer_with_google_auth(endpoint, service_account_key):
    credentials, request = _google_credentials(endpoint, service_account_key)
    credentials.refresh(request)
    info = _introspect(endpoint, credentials.token)[1]
    assert info['active'] is True and info['username'] == 'relay-g@example.com' and info['scope'] == GOOGLE_SCOPE


@pytest.mark.parametrize('key_kind, subject, scope', [
    ('other', 'relay-g@example.com', GOOGLE_SCOPE),
    ('same', 'someone-else@example.com', GOOGLE_SCOPE),
    ('same', 'relay-g@example.com', 'https://www.googleapis.com/auth/gmail.send'),
])
def test_service_account_refusals(endpoint, service_account_key, key_kind, subject, scope):
    key = service_account_key if key_kind == 'same' else _key()
    credentials, request = _google_credentials(endpoint, key, subject, scope)
    with pytest.raises(google_exceptions.RefreshError):
        credentials.refresh(request)


def test_service_account_revoked(endpoint, service_account_key):
    endpoint['clients']['relay@project.iam.test']['revoked'] = True
    credentials, request = _google_credentials(endpoint, service_account_key)
    with pytest.raises(google_exceptions.RefreshError):
        credentials.refresh(request)


def test_log_names_token_ids_never_secrets_or_tokens(endpoint, service_account_key):
    tokens = [_client_credentials(endpoint)[1]['access_token']]
    credentials, request = _google_credentials(endpoint, service_account_key)
    credentials.refresh(request)
    tokens.append(credentials.token)
    _client_credentials(endpoint, client_secret=SECRET + 'x')
    for token in tokens:
        _introspect(endpoint, token)
    text = '\n'.join(endpoint['log'])
    assert text.count('issued token jti=') == 2
    assert SECRET not in text and 'BEGIN' not in text
    for token in tokens:
        for piece in token.split('.'):
            assert piece not in text


def test_only_posted_forms_are_answered(endpoint):
    request = urllib.request.Request(endpoint['url'] + '/%s/oauth2/v2.0/token?client_secret=%s' % (TENANT, 'x' * 12))
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, context=endpoint['context'], timeout=10)
    assert error.value.code == 405


def _assertion(endpoint, key, certificate, tenant=TENANT, **overrides):
    """A client assertion in the shape of certificate credentials (RS256, x5t#S256 of the certificate, padded)."""
    import base64
    import time
    import uuid

    import jwt

    now = int(time.time())
    claims = dict(aud=endpoint['url'] + '/%s/oauth2/v2.0/token' % tenant, iss='app-cert', sub='app-cert',
                  jti=str(uuid.uuid4()), nbf=now, exp=now + 300)
    claims.update(overrides)
    thumbprint = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).decode()
    return jwt.encode(claims, _pem(key), algorithm='RS256', headers={'x5t#S256': thumbprint})


def _certificate_credentials(endpoint, assertion, **overrides):
    form = dict(grant_type='client_credentials', client_id='app-cert', scope=MS_SCOPE, client_assertion=assertion,
                client_assertion_type='urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
    form.update(overrides)
    return _post(endpoint, '/%s/oauth2/v2.0/token' % TENANT, **form)


def test_certificate_credentials_get_a_token_for_the_mailbox(endpoint, app_certificate):
    status, body = _certificate_credentials(endpoint, _assertion(endpoint, *app_certificate))
    assert status == 200, body
    status, info = _introspect(endpoint, body['access_token'])
    assert info['active'] is True and info['username'] == 'relay-c@example.com' and info['client_id'] == 'app-cert'
    assert any(line.startswith('issued token ') and 'client=app-cert' in line for line in endpoint['log'])


def test_certificate_credentials_refusals(endpoint, app_certificate):
    key, certificate = app_certificate
    other_key = _key()
    cases = [
        # Signed by another key, though naming the registered certificate.
        _certificate_credentials(endpoint, _assertion(endpoint, other_key, certificate)),
        # Another audience (tenant), another subject, too long-lived.
        _certificate_credentials(endpoint, _assertion(endpoint, key, certificate, tenant='other.test')),
        _certificate_credentials(endpoint, _assertion(endpoint, key, certificate, sub='someone')),
        _certificate_credentials(endpoint, _assertion(endpoint, key, certificate, exp=int(__import__('time').time()) + 7200)),
        # A client secret besides the assertion; a client with a secret cannot use an assertion.
        _certificate_credentials(endpoint, _assertion(endpoint, key, certificate), client_secret=SECRET),
        _certificate_credentials(endpoint, _assertion(endpoint, key, certificate), client_id='app-1'),
    ]
    assert [(status, body['error']) for status, body in cases] == [
        (401, 'invalid_client'), (401, 'invalid_client'), (401, 'invalid_client'), (401, 'invalid_client'),
        (400, 'invalid_request'), (400, 'unauthorized_client')]
    # The thumbprint of another certificate (same key): refused too.
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'other')])
    other = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(4)
             .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    status, body = _certificate_credentials(endpoint, _assertion(endpoint, key, other))
    assert (status, body['error']) == (401, 'invalid_client') and 'not registered' in body['error_description']
