# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Local SMTP servers and a throwaway PKI for the smtp_probe unit tests (loopback only)."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import socket
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USERNAME = 'relay-a'
# Contains ':' and blanks like real map passwords can; the tests grep every output for it.
PASSWORD = 'Pr0be s3cret:with colon'


def _name(common_name, organization):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _write_key(path, key):
    with open(path, 'wb') as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _write_cert(path, cert):
    with open(path, 'wb') as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, 'Probe Test'))
        .issuer_name(_name(common_name, 'Probe Test'))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


class TestPKI:
    """A CA the probe is told to trust, an unrelated CA, and server certificates issued by the first."""

    __test__ = False  # not a pytest test class

    server_days = 30

    def __init__(self, directory):
        self.directory = directory
        self._ca_key, self._ca_cert = _make_ca('Probe Test CA')
        other_cert = _make_ca('Unrelated CA')[1]
        now = datetime.datetime.now(datetime.timezone.utc)
        self.server_not_after = (now + datetime.timedelta(days=self.server_days)).replace(microsecond=0)
        self.ca_file = os.path.join(directory, 'ca.pem')
        self.other_ca_file = os.path.join(directory, 'other-ca.pem')
        _write_cert(self.ca_file, self._ca_cert)
        _write_cert(self.other_ca_file, other_cert)
        # Deliberately no IP address: connecting to 127.0.0.1 must fail the host name check.
        self._chains = {'localhost': self._issue('localhost'), 'other.probe.test': self._issue('other.probe.test')}

    def _issue(self, dns_name):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(dns_name, 'Probe Upstream'))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(self.server_not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                           critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        cert_file = os.path.join(self.directory, dns_name + '.pem')
        key_file = os.path.join(self.directory, dns_name + '.key')
        _write_cert(cert_file, cert)
        _write_key(key_file, key)
        return cert_file, key_file

    def server_context(self, dns_name='localhost'):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*self._chains[dns_name])
        return context

    def chain(self, dns_name):
        """(certificate file, key file) of a certificate for dns_name issued by the trusted CA."""
        if dns_name not in self._chains:
            self._chains[dns_name] = self._issue(dns_name)
        return self._chains[dns_name]

    def sni_context(self, names, default='other.probe.test'):
        """A server context that chooses its certificate by the SNI the client sent, as a Postfix server with
        tls_server_sni_maps does: names maps an SNI name to the DNS name of its certificate; no SNI, or
        another name, gets the certificate for default. sent lists what each client sent (None: no SNI).
        """
        context = self.server_context(default)
        contexts = {}
        for name, cert_name in names.items():
            self.chain(cert_name)
            contexts[name] = self.server_context(cert_name)
        context.sent = []

        def choose(ssl_socket, server_name, dummy):
            context.sent.append(server_name)
            if server_name in contexts:
                ssl_socket.context = contexts[server_name]

        context.sni_callback = choose
        return context

    def client_auth_context(self, dns_name='localhost'):
        """A server context that requires a client certificate issued by the trusted CA."""
        context = self.server_context(dns_name)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(self.ca_file)
        return context


def password_checker(username=USERNAME, password=PASSWORD):
    """An aiosmtpd authenticator that accepts one account (the credentials compared as UTF-8 bytes)."""

    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data == (username.encode(), password.encode())
        # handled=False makes aiosmtpd send its 535 reply; with the default it stays silent.
        return AuthResult(success=ok, handled=False)

    return check


check_password = password_checker()


class Handler:
    """aiosmtpd handler; `hide_auth` drops AUTH from EHLO, `reject_ehlo` refuses EHLO outright."""

    def __init__(self, hide_auth=False, reject_ehlo=False):
        self.hide_auth = hide_auth
        self.reject_ehlo = reject_ehlo

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.reject_ehlo:
            return ['550 5.7.1 EHLO refused by test server']
        if self.hide_auth:
            return [line for line in responses if not line[4:].startswith('AUTH')]
        return responses


class CramMD5Handler(Handler):
    """Adds CRAM-MD5, which aiosmtpd lacks; the double underscore becomes '-' in the mechanism name."""

    async def auth_CRAM__MD5(self, server, args):
        challenge = b'<probe.test@localhost>'
        reply = await server.challenge_auth(challenge)
        if not isinstance(reply, bytes) or b' ' not in reply:
            return AuthResult(success=False, handled=False)
        user, digest = reply.rsplit(b' ', 1)
        expected = hmac.new(PASSWORD.encode(), challenge, hashlib.md5).hexdigest().encode()
        return AuthResult(success=user == USERNAME.encode() and hmac.compare_digest(digest, expected), handled=False)


class EphemeralPortController(Controller):
    """Controller on 127.0.0.1 with a port chosen by the kernel (aiosmtpd wants a fixed one)."""

    def __init__(self, handler, **kwargs):
        super().__init__(handler, hostname='127.0.0.1', port=0, **kwargs)

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def start_smtpd(handler=None, authenticator=check_password, **smtp_kwargs):
    """Start an aiosmtpd server; returns the controller (stop it when done)."""
    ssl_context = smtp_kwargs.pop('ssl_context', None)
    controller = EphemeralPortController(handler or Handler(), ssl_context=ssl_context,
                                         authenticator=authenticator, **smtp_kwargs)
    controller.start()
    return controller


class ScriptedServer:
    """Raw TCP server that sends a greeting and answers commands from a dict, for replies aiosmtpd cannot produce.

    With `greeting=None` it accepts nothing and never speaks: a peer that swallows the connection.
    A reply of None hangs up; an empty reply leaves the client waiting; a callable gets the client's
    line and returns the reply (a server that quotes what it was sent). `lines` keeps what clients sent.
    """

    def __init__(self, greeting, replies=None):
        self.greeting = greeting
        self.replies = replies or {}
        self.lines = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = None
        if greeting is not None:
            self._thread = threading.Thread(target=self._serve, daemon=True)
            self._thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn = self.sock.accept()[0]
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    self._talk(conn)
                except OSError:  # the client gave up first; serve the next one
                    pass

    def _talk(self, conn):
        conn.sendall(self.greeting.encode() + b'\r\n')
        reader = conn.makefile('rb')
        for line in reader:
            text = line.decode('utf-8', 'replace')
            self.lines.append(text)
            verb = text.split(' ', 1)[0].strip().upper()
            reply = self.replies.get(verb, '502 5.5.2 not implemented')
            if callable(reply):
                reply = reply(text)
            if reply is None:
                return
            if reply == '':
                continue
            conn.sendall(reply.encode() + b'\r\n')
            if verb == 'QUIT':
                return

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        self.sock.close()


def closed_port():
    """A loopback port with nothing listening on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
