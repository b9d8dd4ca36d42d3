# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A mock OAuth2 token endpoint for the lab: the identity provider behind an XOAUTH2 sink.

Grants (the two an unattended mail relay uses):
- POST /<tenant>/oauth2/v2.0/token, grant_type=client_credentials with client_id, client_secret and
  scope (the shape of Microsoft's identity platform), or with certificate credentials instead of the
  secret: a client_assertion (RS256, signed with the key of the client's registered certificate, its
  SHA-256 thumbprint in the x5t#S256 header, aud this token URL, iss and sub the client id);
- POST /token, grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer with an RS256 assertion signed
  by a service account's key (the shape of Google's service accounts; aud is Google's token URL, as
  google-auth writes it, or this one).
Tokens are RS256 JWTs signed with the server's key, valid for token_lifetime seconds, for one mailbox.
POST /introspect (RFC 7662, token=...) tells Dovecot whether a token is one of ours, unexpired, and for
which mailbox. A client marked revoked gets no new token and its tokens introspect as inactive.

Secrets are never logged, nor tokens: only client ids, mailboxes, token ids (jti) and expiry times.
The configuration (JSON), key and certificate are read once at start; restart to apply a change.
Stdlib plus PyJWT, cryptography and passlib (python3-jwt, python3-cryptography, python3-passlib on Debian).
"""

import argparse
import base64
import datetime
import http.server
import json
import os
import re
import ssl
import sys
import time
import urllib.parse
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from passlib.hash import sha512_crypt

CLIENT_CREDENTIALS = 'client_credentials'
JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
CLIENT_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
# What a client's entry holds for each way it proves itself.
CLIENT_PROOFS = {'secret': 'secret_hash', 'key': 'public_key', 'certificate': 'certificate'}
MICROSOFT_TOKEN_PATH = re.compile(r'\A/([A-Za-z0-9.-]{1,100})/oauth2/v2\.0/token\Z')
GOOGLE_TOKEN_PATH = '/token'
INTROSPECT_PATH = '/introspect'
# google-auth puts Google's token URL into every assertion's aud, whatever token_uri it posts to.
GOOGLE_AUDIENCE = 'https://oauth2.googleapis.com/token'
MAX_BODY = 64 * 1024
# Assertions valid for longer than this are refused, as Google does (one hour).
MAX_ASSERTION_LIFETIME = 3600
# Clock skew allowed on an assertion's iat/exp.
LEEWAY = 30
_UNPRINTABLE = re.compile(r'[^\x21-\x7e]')


def shown(value, limit=80):
    """Untrusted input as it may appear in the log: printable ASCII only, bounded."""
    return _UNPRINTABLE.sub('?', str(value))[:limit]


def verify_secret(secret, stored):
    """Check secret against its SHA512-CRYPT hash (made on the controller, as the sink's user passwords)."""
    try:
        return sha512_crypt.verify(secret, stored)
    except (ValueError, TypeError):
        return False


class Refused(Exception):
    """A request the endpoint answers with an OAuth2 error."""

    def __init__(self, status, error, description, reason):
        super(Refused, self).__init__(reason)
        self.status = status
        self.body = {'error': error, 'error_description': description}
        self.reason = reason


class Issuer(object):
    """Issues and checks tokens. now is a function so tests can move the clock."""

    def __init__(self, config, private_key_pem, now=time.time, log=None):
        self.base_url = config['base_url'].rstrip('/')
        self.lifetime = int(config.get('token_lifetime', 3600))
        self.clients = dict((client['client_id'], client) for client in config['clients'])
        self.private_key = private_key_pem
        self.public_key = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).prepare_key(
            private_key_pem).public_key()
        self.now = now
        self.log = log or (lambda text: None)

    @property
    def google_token_url(self):
        return self.base_url + GOOGLE_TOKEN_PATH

    def _client(self, client_id, kind):
        client = self.clients.get(client_id)
        if client is None or CLIENT_PROOFS[kind] not in client:
            raise Refused(400, 'unauthorized_client', 'AADSTS700016: Application not found.', 'unknown client')
        return client

    def _issue(self, client, grant, scope):
        now = int(self.now())
        claims = {
            'iss': self.base_url, 'aud': client['scope'], 'sub': client['mailbox'], 'azp': client['client_id'],
            'scp': scope, 'iat': now, 'nbf': now, 'exp': now + self.lifetime, 'jti': uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self.private_key, algorithm='RS256')
        self.log('issued token jti=%s grant=%s client=%s mailbox=%s expires=%s' % (
            claims['jti'], grant, shown(client['client_id']), shown(client['mailbox']), _iso(claims['exp'])))
        return {'token_type': 'Bearer', 'expires_in': self.lifetime, 'ext_expires_in': self.lifetime,
                'access_token': token}

    def client_credentials(self, tenant, form):
        client_id = form.get('client_id', '')
        try:
            if form.get('grant_type') != CLIENT_CREDENTIALS:
                raise Refused(400, 'unsupported_grant_type', 'AADSTS70003: grant type not supported here.',
                              'grant type %s' % shown(form.get('grant_type', '')))
            certificate = 'client_assertion' in form
            client = self._client(client_id, 'certificate' if certificate else 'secret')
            if client.get('tenant') != tenant:
                raise Refused(400, 'invalid_request', 'AADSTS90002: Tenant not found.', 'tenant %s' % shown(tenant))
            if certificate:
                self._check_assertion(client, tenant, form)
            elif not verify_secret(form.get('client_secret', ''), client['secret_hash']):
                raise Refused(401, 'invalid_client', 'AADSTS7000215: Invalid client secret provided.', 'wrong secret')
            if client.get('revoked'):
                raise Refused(401, 'invalid_client', 'AADSTS7000222: The provided client secret keys are expired.',
                              'secret revoked')
            if form.get('scope') != client['scope']:
                raise Refused(400, 'invalid_scope', 'AADSTS70011: The provided scope is not valid.',
                              'scope %s' % shown(form.get('scope', '')))
        except Refused as refusal:
            self.log('refused token request grant=%s client=%s: %s' % (CLIENT_CREDENTIALS, shown(client_id), refusal.reason))
            raise
        return self._issue(client, CLIENT_CREDENTIALS, form['scope'])

    def _check_assertion(self, client, tenant, form):
        """Certificate credentials: the client assertion signed by the key of the client's certificate."""
        if form.get('client_assertion_type') != CLIENT_ASSERTION or 'client_secret' in form:
            raise Refused(400, 'invalid_request', 'AADSTS50027: Invalid client assertion type.', 'assertion type')
        certificate = x509.load_pem_x509_certificate(client['certificate'].encode('ascii'))
        thumbprint = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).decode('ascii').rstrip('=')
        assertion = form.get('client_assertion', '')
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, certificate.public_key(), algorithms=['RS256'],
                                audience=self.base_url + '/%s/oauth2/v2.0/token' % tenant, issuer=client['client_id'],
                                leeway=LEEWAY, options={'require': ['iss', 'sub', 'aud', 'exp', 'nbf', 'jti']})
        except jwt.InvalidTokenError as exc:
            raise Refused(401, 'invalid_client', 'AADSTS700027: Client assertion failed signature validation.',
                          'assertion %s' % type(exc).__name__)
        if str(header.get('x5t#S256', '')).rstrip('=') != thumbprint:
            raise Refused(401, 'invalid_client', 'AADSTS700027: The certificate with identifier used to sign the client '
                          'assertion is not registered on application.', 'assertion of another certificate')
        if claims['sub'] != client['client_id'] or claims['exp'] - claims['nbf'] > MAX_ASSERTION_LIFETIME:
            raise Refused(401, 'invalid_client', 'AADSTS700024: Client assertion is not within its valid time range.',
                          'assertion subject or lifetime')

    def jwt_bearer(self, form):
        client_id = ''
        try:
            if form.get('grant_type') != JWT_BEARER:
                raise Refused(400, 'unsupported_grant_type', 'Invalid grant_type.',
                              'grant type %s' % shown(form.get('grant_type', '')))
            assertion = form.get('assertion', '')
            try:
                client_id = jwt.decode(assertion, options={'verify_signature': False}).get('iss', '')
            except jwt.InvalidTokenError:
                raise Refused(400, 'invalid_grant', 'Invalid JWT.', 'assertion is not a JWT')
            client = self._client(client_id, 'key')
            try:
                claims = jwt.decode(assertion, client['public_key'], algorithms=['RS256'], audience=[GOOGLE_AUDIENCE, self.google_token_url],
                                    issuer=client_id, leeway=LEEWAY, options={'require': ['iss', 'aud', 'exp', 'iat']})
            except jwt.InvalidTokenError as exc:
                raise Refused(400, 'invalid_grant', 'Invalid JWT: %s' % type(exc).__name__, type(exc).__name__)
            if claims['exp'] - claims['iat'] > MAX_ASSERTION_LIFETIME:
                raise Refused(400, 'invalid_grant', 'Invalid JWT: Token must be a short-lived token.', 'assertion too long-lived')
            if client.get('revoked'):
                raise Refused(400, 'invalid_grant', 'Invalid JWT Signature.', 'key revoked')
            if claims.get('sub', client['mailbox']) != client['mailbox']:
                raise Refused(401, 'unauthorized_client', 'Client is unauthorized to retrieve access tokens.',
                              'subject %s' % shown(claims.get('sub')))
            if claims.get('scope') != client['scope']:
                raise Refused(400, 'invalid_scope', 'Invalid OAuth scope.', 'scope %s' % shown(claims.get('scope', '')))
        except Refused as refusal:
            self.log('refused token request grant=jwt-bearer client=%s: %s' % (shown(client_id), refusal.reason))
            raise
        return self._issue(client, 'jwt-bearer', claims['scope'])

    def introspect(self, form):
        """RFC 7662: active with the mailbox as username, or only active false."""
        try:
            claims = jwt.decode(form.get('token', ''), self.public_key, algorithms=['RS256'], issuer=self.base_url,
                                options={'verify_aud': False, 'verify_exp': False, 'require': ['exp', 'jti', 'azp']})
        except jwt.InvalidTokenError:
            self.log('introspection: not a token of this issuer: inactive')
            return {'active': False}
        client = self.clients.get(claims['azp'])
        reason = ('unknown client' if client is None else 'client revoked' if client.get('revoked')
                  else 'expired' if claims['exp'] <= self.now() else None)
        self.log('introspection jti=%s client=%s: %s' % (claims['jti'], shown(claims['azp']), reason or 'active'))
        if reason:
            return {'active': False}
        return {'active': True, 'username': claims['sub'], 'client_id': claims['azp'], 'scope': claims['scp'],
                'token_type': 'Bearer', 'exp': claims['exp'], 'iat': claims['iat'], 'iss': claims['iss']}


def _iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def handler_class(issuer):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = 'smarthost-oauth2-mock'
        sys_version = ''
        # The issuer serving the requests (tests reach it here).
        issuer = None

        def log_message(self, format, *args):
            # Only the path, never a query string (a client might put a secret there).
            sys.stderr.write('%s %s %s\n' % (self.address_string(), shown(self.command or '-', 10),
                                             shown(urllib.parse.urlsplit(self.path or '').path)))

        def _reply(self, status, body):
            data = json.dumps(body).encode('utf-8')
            self.send_response(status)
            self.send_header('Content-Type', 'application/json; charset=utf-8')
            self.send_header('Cache-Control', 'no-store')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._reply(405, {'error': 'invalid_request', 'error_description': 'POST only.'})

        def do_POST(self):
            length = int(self.headers.get('Content-Length') or 0)
            if length > MAX_BODY or not self.headers.get('Content-Type', '').startswith(
                    'application/x-www-form-urlencoded'):
                return self._reply(400, {'error': 'invalid_request', 'error_description': 'Form body expected.'})
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode('utf-8', 'replace')))
            path = urllib.parse.urlsplit(self.path).path
            tenant = MICROSOFT_TOKEN_PATH.match(path)
            try:
                if tenant:
                    return self._reply(200, issuer.client_credentials(tenant.group(1), form))
                if path == GOOGLE_TOKEN_PATH:
                    return self._reply(200, issuer.jwt_bearer(form))
                if path == INTROSPECT_PATH:
                    return self._reply(200, issuer.introspect(form))
            except Refused as refusal:
                return self._reply(refusal.status, refusal.body)
            return self._reply(404, {'error': 'invalid_request', 'error_description': 'Unknown endpoint.'})

    Handler.issuer = issuer
    return Handler


def serve(config, key_file, cert_file, log=None, now=time.time):
    """The HTTPS server (not yet serving); log defaults to stderr, which systemd puts in the journal."""
    log = log or (lambda text: sys.stderr.write(text + '\n'))
    with open(key_file, 'rb') as handle:
        key = handle.read()
    issuer = Issuer(config, key, now=now, log=log)
    server = http.server.ThreadingHTTPServer((config.get('address', '0.0.0.0'), int(config['port'])), handler_class(issuer))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--config', required=True, help='JSON configuration')
    parser.add_argument('--key', required=True, help='RSA private key (PEM): TLS and token signatures')
    parser.add_argument('--cert', required=True, help='TLS certificate (PEM)')
    args = parser.parse_args(argv)
    with open(args.config, encoding='utf-8') as handle:
        config = json.load(handle)
    server = serve(config, args.key, args.cert)
    sys.stderr.write('serving %s on port %s, token lifetime %ss, %d clients\n' % (
        config['base_url'], config['port'], config.get('token_lifetime', 3600), len(config['clients'])))
    sys.stderr.flush()
    server.serve_forever()


if __name__ == '__main__':
    # Line-buffered, so each log line reaches the journal at once.
    sys.stderr = os.fdopen(sys.stderr.fileno(), 'w', buffering=1)
    main()
