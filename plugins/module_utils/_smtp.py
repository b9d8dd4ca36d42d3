# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SMTP probing: EHLO, STARTTLS or implicit TLS, and AUTH against an upstream, sending no mail.

Used by the smtp_probe module and by relay_config's preflight. Private to the collection.
Credentials never leave this file in a message: a server reply that quotes any piece of what was
sent during AUTH is withheld (some servers echo the AUTH line, whose base64 is the password).
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import hmac
import ipaddress
import os
import smtplib
import socket
import ssl
import tempfile

try:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

from ansible_collections.smarthost.postfix.plugins.module_utils._relay_model import (
    ENCRYPTING_TLS,
    VERIFYING_TLS,
    sni_name,
)

# Shortest piece of a credential that counts as quoted in a server reply.
QUOTE_WINDOW = 8
WITHHELD = '(reply withheld: it quotes what was sent during AUTH)'
SASL_PLUGIN_HINT = 'on Debian install libsasl2-modules, on RHEL cyrus-sasl-plain'

# Short attribute names as OpenSSL prints them, for the stdlib certificate dict.
_SHORT_NAMES = {
    'commonName': 'CN',
    'organizationName': 'O',
    'organizationalUnitName': 'OU',
    'countryName': 'C',
    'stateOrProvinceName': 'ST',
    'localityName': 'L',
    'domainComponent': 'DC',
}


class ProbeFailed(Exception):
    """A probe step failed; the message is meant for the user as is."""


class _BannerMixin:
    """Keep the greeting, which smtplib reads on connect and then discards."""

    banner = None

    def connect(self, host='localhost', port=0, source_address=None):
        code, msg = super(_BannerMixin, self).connect(host, port, source_address)
        self.banner = '%d %s' % (code, _text(msg))
        return code, msg


class _SMTP(_BannerMixin, smtplib.SMTP):
    pass


class _SMTPS(_BannerMixin, smtplib.SMTP_SSL):
    pass


def _text(data):
    if isinstance(data, bytes):
        return data.decode('utf-8', 'replace')
    return data


def build_tls_context(tls, ca_file=None):
    """Client context for a Postfix TLS level: only verify/secure check the certificate."""
    if tls in VERIFYING_TLS:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ProbeFailed('cannot load CA file %s: %s' % (ca_file, getattr(exc, 'strerror', None) or exc))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _dns_name_matches(pattern, name):
    """RFC 6125: a DNS name of a certificate matches name exactly, or as '*.rest' for one left-most label."""
    pattern, name = pattern.lower().rstrip('.'), name.lower().rstrip('.')
    if pattern.startswith('*.'):
        label, dot, rest = name.partition('.')
        return bool(label) and bool(dot) and rest == pattern[2:]
    return pattern == name


def certificate_matches(cert, host):
    """Whether a verified peer certificate (getpeercert()) names host: its DNS or IP subjectAltNames.

    Needed where SNI and the name checked differ (an explicit servername): the stdlib checks only the
    name it sends, and has no public matcher since ssl.match_hostname went in Python 3.12.
    """
    names = (cert or {}).get('subjectAltName', ())
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return any(kind == 'DNS' and _dns_name_matches(value, host) for kind, value in names)
    return any(kind == 'IP Address' and ipaddress.ip_address(value.strip()) == address for kind, value in names)


class TlsClient(object):
    """What smtplib gets as its SSL context: the TLS handshake as Postfix makes it with one upstream.

    smtplib passes the host it connected to as server_hostname, which Python sends in SNI; Postfix sends
    SNI only when the TLS policy says so (model.sni_name). So this sends sni (None: no SNI) and checks
    the certificate against the host name (verify and secure), as Postfix does, whatever SNI was sent.
    """

    def __init__(self, tls, ca_file, host, sni, cert_file=None, key_file=None):
        self.context = build_tls_context(tls, ca_file)
        self.sni = sni
        self.check = None
        if tls in VERIFYING_TLS and sni != host and not (sni is None and _is_address(host)):
            # The chain is still verified by OpenSSL; only the name check is ours (certificate_matches).
            self.context.check_hostname = False
            self.check = host
        elif tls in VERIFYING_TLS:
            self.sni = host  # the name checked; Python sends no SNI for an address, as Postfix sends none
        if cert_file:
            try:
                self.context.load_cert_chain(cert_file, key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ProbeFailed('cannot load the TLS client certificate and key: %s'
                                  % (getattr(exc, 'reason', None) or getattr(exc, 'strerror', None) or type(exc).__name__))

    def wrap_socket(self, sock, server_hostname=None, **kwargs):
        tls_socket = self.context.wrap_socket(sock, server_hostname=self.sni, **kwargs)
        if self.check is not None and not certificate_matches(tls_socket.getpeercert(), self.check):
            tls_socket.close()
            error = ssl.SSLCertVerificationError("certificate does not name %s (sent SNI %s)" % (self.check, self.sni))
            error.verify_message = "Hostname mismatch, certificate is not valid for '%s'." % self.check
            raise error
        return tls_socket


def _is_address(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _format_stdlib_name(name):
    parts = []
    for rdn in name or ():
        for key, value in rdn:
            parts.append('%s=%s' % (_SHORT_NAMES.get(key, key), value))
    return ', '.join(parts)


def _cert_facts_from_stdlib_dict(cert):
    not_after = None
    if cert.get('notAfter'):
        seconds = ssl.cert_time_to_seconds(cert['notAfter'])
        not_after = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return {
        'peer_subject': _format_stdlib_name(cert.get('subject')),
        'peer_issuer': _format_stdlib_name(cert.get('issuer')),
        'peer_dns_names': [value for kind, value in cert.get('subjectAltName', ()) if kind == 'DNS'],
        'not_after': not_after,
    }


def _cert_facts_from_cryptography(der):
    cert = x509.load_der_x509_certificate(der)
    try:
        not_after = cert.not_valid_after_utc
    except AttributeError:  # cryptography < 42 returns a naive UTC datetime
        not_after = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        dns_names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []

    def fmt(name):
        return ', '.join(attr.rfc4514_string() for rdn in name.rdns for attr in rdn)

    return {
        'peer_subject': fmt(cert.subject),
        'peer_issuer': fmt(cert.issuer),
        'peer_dns_names': list(dns_names),
        'not_after': not_after,
    }


def _decode_der_with_stdlib(der):
    # Private but long-standing CPython helper; it only reads from a file.
    fd, path = tempfile.mkstemp(suffix='.pem')
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(ssl.DER_cert_to_PEM_cert(der))
        return ssl._ssl._test_decode_cert(path)
    finally:
        os.unlink(path)


def certificate_facts(tls_socket):
    """Subject, issuer, SAN and expiry of the peer certificate, verified or not."""
    facts = {'peer_subject': None, 'peer_issuer': None, 'peer_dns_names': [], 'not_after': None}
    # Without verification getpeercert() returns {}, so decode the DER form ourselves.
    cert = tls_socket.getpeercert()
    der = tls_socket.getpeercert(binary_form=True)
    try:
        if cert:
            facts.update(_cert_facts_from_stdlib_dict(cert))
        elif der and HAS_CRYPTOGRAPHY:
            facts.update(_cert_facts_from_cryptography(der))
        elif der:
            facts.update(_cert_facts_from_stdlib_dict(_decode_der_with_stdlib(der)))
    except Exception:  # pylint: disable=broad-except
        # Certificate details are informative; an odd certificate must not fail the probe.
        pass
    return facts


def tls_facts(smtp, mode, verified):
    facts = {
        'mode': mode, 'version': None, 'cipher': None, 'verified': False,
        'peer_subject': None, 'peer_issuer': None, 'peer_dns_names': [],
        'not_after': None, 'days_left': None,
    }
    if mode == 'none':
        return facts
    sock = smtp.sock
    facts['version'] = sock.version()
    facts['cipher'] = (sock.cipher() or (None,))[0]
    facts['verified'] = verified
    facts.update(certificate_facts(sock))
    if facts['not_after'] is not None:
        now = datetime.datetime.now(datetime.timezone.utc)
        facts['days_left'] = int((facts['not_after'] - now).total_seconds() // 86400)
        facts['not_after'] = facts['not_after'].strftime('%Y-%m-%dT%H:%M:%SZ')
    return facts


class Sasl(object):
    """The client side of SASL PLAIN, LOGIN and CRAM-MD5, in UTF-8 (RFC 4616), over an smtplib session.

    smtplib's own auth() encodes the credentials as ASCII: a non-ASCII password raises an error that
    quotes part of it. Every piece sent is kept (in memory, for this session only) so that scrub() can
    withhold a reply that quotes one of them.
    """

    def __init__(self, username, password):
        self.username = username.encode('utf-8')
        self.password = password.encode('utf-8')
        self.sent = [password]

    def _send(self, smtp, data, command=''):
        token = base64.b64encode(data).decode('ascii')
        self.sent.append(token)
        return smtp.docmd(command + token)

    def authenticate(self, smtp, mechanism):
        """(code, reply text) of the server's last answer; 235 means authenticated."""
        if mechanism == 'PLAIN':
            code, reply = self._send(smtp, b'\0' + self.username + b'\0' + self.password, 'AUTH PLAIN ')
        elif mechanism == 'LOGIN':
            code, reply = smtp.docmd('AUTH LOGIN')
            if code == 334:
                code, reply = self._send(smtp, self.username)
            if code == 334:
                code, reply = self._send(smtp, self.password)
        else:
            code, reply = smtp.docmd('AUTH CRAM-MD5')
            if code == 334:
                digest = hmac.new(self.password, base64.b64decode(reply), 'md5').hexdigest()
                code, reply = self._send(smtp, self.username + b' ' + digest.encode('ascii'))
        return code, _text(reply)

    def scrub(self, text):
        """text, or WITHHELD when it quotes QUOTE_WINDOW or more characters of anything sent."""
        for secret in self.sent:
            width = min(QUOTE_WINDOW, len(secret))
            if any(secret[start:start + width] in text for start in range(len(secret) - width + 1)):
                return WITHHELD
        return text


def ehlo_capabilities(ehlo_reply):
    """EHLO reply lines without the first one, which is the server's name."""
    lines = _text(ehlo_reply).splitlines()
    return [line.strip() for line in lines[1:] if line.strip()]


def describe_network_error(exc, params, step):
    """Plain message for an exception raised while talking to the server."""
    where = '%s:%s' % (params['host'], params['port'])
    timeout_types = (socket.timeout, TimeoutError)
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, timeout_types):
        exc = exc.__context__
    if isinstance(exc, timeout_types):
        if step in ('connect', 'greeting'):
            return 'timed out after %s s connecting to %s' % (params['timeout'], where)
        return 'timed out after %s s waiting for %s during %s' % (params['timeout'], where, step)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return 'TLS certificate verification failed for %s: %s' % (params['host'], exc.verify_message or exc.reason)
    if isinstance(exc, ssl.SSLError):
        hint = ''
        if params['implicit_tls']:
            hint = ' (does %s speak implicit TLS? STARTTLS ports need implicit_tls=false)' % where
        return 'TLS handshake with %s failed: %s%s' % (where, exc.reason or exc, hint)
    if isinstance(exc, ConnectionRefusedError):
        return 'connection refused by %s' % where
    if isinstance(exc, socket.gaierror):
        return 'cannot resolve %s: %s' % (params['host'], exc.strerror or exc)
    if isinstance(exc, smtplib.SMTPConnectError):
        return '%s refused the session: %s %s' % (where, exc.smtp_code, _text(exc.smtp_error))
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return '%s closed the connection during %s' % (where, step)
    if isinstance(exc, smtplib.SMTPResponseException):
        return '%s answered %s with %s %s' % (where, step, exc.smtp_code, _text(exc.smtp_error))
    if isinstance(exc, OSError):
        return 'cannot connect to %s: %s' % (where, exc.strerror or exc)
    return '%s failed with %s: %s' % (step, where, exc)


class SmtpProbe:
    """One probe session; `facts` holds what was learned so far, also when a step fails."""

    def __init__(self, params):
        self.params = params
        self.smtp = None
        self.facts = {
            'host': params['host'],
            'port': params['port'],
            'starttls_offered': False,
            'tls': tls_facts(None, 'none', False),
            'auth_mechanisms': [],
            'auth_attempted': False,
            'auth_succeeded': False,
            'sni': sni_name(params['host'], params['tls'], params.get('servername')),
        }

    def run(self):
        params = self.params
        if params['implicit_tls'] and params['tls'] not in ENCRYPTING_TLS:
            raise ProbeFailed('implicit_tls=true needs tls=encrypt, verify or secure (got tls=%s)' % params['tls'])
        context = None
        if params['tls'] != 'none':
            context = TlsClient(params['tls'], params['ca_file'], params['host'], self.facts['sni'],
                                params.get('client_cert_file'), params.get('client_key_file'))
        verified = params['tls'] in VERIFYING_TLS
        try:
            self._connect(context)
            self._ehlo()
            if params['implicit_tls']:
                self.facts['tls'] = tls_facts(self.smtp, 'implicit', verified)
            else:
                self._maybe_starttls(context, verified)
            self.facts['auth_mechanisms'] = self.smtp.esmtp_features.get('auth', '').upper().split()
            if params['username'] is not None:
                self._authenticate()
        finally:
            self._close()
        return self.facts

    def _step(self, step, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (OSError, smtplib.SMTPException) as exc:
            raise ProbeFailed(describe_network_error(exc, self.params, step))

    def _connect(self, context):
        params = self.params
        if params['implicit_tls']:
            factory, extra = _SMTPS, {'context': context}
        else:
            factory, extra = _SMTP, {}
        self.smtp = self._step('greeting', factory, params['host'], params['port'],
                               local_hostname=params['helo_name'], timeout=params['timeout'], **extra)
        self.facts['banner'] = self.smtp.banner
        self.facts['helo_name'] = self.smtp.local_hostname

    def _ehlo(self):
        code, reply = self._step('EHLO', self.smtp.ehlo)
        if code != 250:
            raise ProbeFailed('%s:%s rejected EHLO: %s %s' % (self.params['host'], self.params['port'], code, _text(reply)))
        self.facts['ehlo_capabilities'] = ehlo_capabilities(reply)

    def _maybe_starttls(self, context, verified):
        params = self.params
        offered = self.smtp.has_extn('starttls')
        self.facts['starttls_offered'] = offered
        if params['tls'] == 'none' or (params['tls'] == 'may' and not offered):
            return
        if not offered:
            raise ProbeFailed('%s:%s does not offer STARTTLS (tls=%s requires it)'
                              % (params['host'], params['port'], params['tls']))
        self._step('STARTTLS', self.smtp.starttls, context=context)
        self.facts['tls'] = tls_facts(self.smtp, 'starttls', verified)
        # Capabilities (AUTH in particular) often change once the channel is encrypted.
        self._ehlo()

    def _authenticate(self):
        params = self.params
        where = '%s:%s' % (params['host'], params['port'])
        channel = self.facts['tls']['mode']
        if channel == 'none' and not params['allow_plaintext_auth']:
            raise ProbeFailed('refusing to send the credentials of user %s to %s without TLS (tls=%s); '
                              'set allow_plaintext_auth=true to allow it' % (params['username'], where, params['tls']))
        offered = self.facts['auth_mechanisms']
        if not offered:
            raise ProbeFailed('%s offers no AUTH over this channel (TLS: %s)' % (where, channel))
        client = [mech.upper() for mech in params['mechanisms']]
        common = [mech for mech in client if mech in offered]
        if not common:
            raise ProbeFailed('no SASL mechanism in common: server offers %s, client supports %s (%s)'
                              % (', '.join(offered), ', '.join(client), SASL_PLUGIN_HINT))
        mechanism = common[0]
        self.facts['auth_attempted'] = True
        self.facts['auth_mechanism'] = mechanism
        sasl = Sasl(params['username'], params['password'])
        try:
            code, reply = sasl.authenticate(self.smtp, mechanism)
        except (OSError, smtplib.SMTPException) as exc:
            raise ProbeFailed(sasl.scrub(describe_network_error(exc, params, 'AUTH')))
        if code != 235:
            raise ProbeFailed('authentication rejected for user %s: %s %s' % (params['username'], code, sasl.scrub(reply)))
        self.facts['auth_succeeded'] = True

    def _close(self):
        if self.smtp is None:
            return
        try:
            self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            self.smtp.close()


def probe_one(params):
    """Facts of one probe, with failed and, when it failed, msg."""
    probe = SmtpProbe(params)
    try:
        return dict(probe.run(), failed=False)
    except ProbeFailed as exc:
        return dict(probe.facts, failed=True, msg=str(exc))


def probe_all(params):
    """Probe every entry of params['upstreams'] at the same time; results in their order."""
    upstreams = [dict(params, upstreams=None, **upstream) for upstream in params['upstreams']]
    if not upstreams:
        return []
    # One thread per upstream: a fallback that times out does not delay the others' results.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(upstreams)) as pool:
        return list(pool.map(probe_one, upstreams))
