#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: smtp_probe
short_description: Check an upstream SMTP relay the way Postfix would reach it, without sending mail
version_added: 0.1.0
description:
  - From the host the task runs on, connects to an upstream SMTP server like the Postfix SMTP client
    would (STARTTLS on submission or SMTP ports, implicit TLS on port 465), optionally verifies the
    server certificate, reads the EHLO capabilities and, when credentials are given, authenticates
    with them.
  - No mail is sent; the session ends with C(QUIT) right after authentication.
  - Returns facts about the TLS session, the certificate and the AUTH mechanisms, and fails with a
    plain message that says what went wrong (connection refused, timeout, certificate verification,
    STARTTLS missing, AUTH missing, no common SASL mechanism, credentials rejected).
  - The options mirror one entry of the C(relay_upstreams) list of the P(smarthost.postfix.relay#role)
    role, so an entry can be passed straight through.
  - The password is never logged or returned.
  - O(upstreams) probes several upstreams in one module run, all at the same time, for example the
    primary and the fallbacks of one relay.
author:
  - smarthost.postfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - smarthost.postfix.read_only
options:
  host:
    description:
      - Host name or address of the upstream server.
      - This name is also checked against the certificate when O(tls=verify) or O(tls=secure).
      - Required unless O(upstreams) is given.
    type: str
  upstreams:
    description:
      - Several upstreams to probe in one module run, all at the same time, each a dictionary with
        the per-upstream options of a single probe, like the entries of C(relay_upstreams).
      - O(mechanisms), O(ca_file), O(timeout), O(helo_name) and O(allow_plaintext_auth) apply to all.
      - The module fails when any upstream fails; RV(upstreams) then still says which did and why.
      - Mutually exclusive with O(host), O(port), O(mx_lookup), O(tls), O(implicit_tls), O(username)
        and O(password).
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      host:
        description: As the top-level O(host).
        type: str
        required: true
      port:
        description: As the top-level O(port).
        type: int
        default: 587
      mx_lookup:
        description: As the top-level O(mx_lookup).
        type: bool
        default: false
      tls:
        description: As the top-level O(tls).
        type: str
        choices: [none, may, encrypt, verify, secure]
        default: encrypt
      implicit_tls:
        description: As the top-level O(implicit_tls).
        type: bool
        default: false
      username:
        description: As the top-level O(username).
        type: str
      password:
        description: As the top-level O(password). Never logged or returned.
        type: str
  port:
    description:
      - TCP port of the upstream server.
    type: int
    default: 587
  mx_lookup:
    description:
      - Accepted so that a C(relay_upstreams) entry can be passed unchanged.
      - The probe always connects to O(host) directly and never looks up MX records.
    type: bool
    default: false
  tls:
    description:
      - TLS security level, with the meaning of the Postfix C(smtp_tls_security_level) setting.
      - V(none) never uses TLS, even when the server offers STARTTLS.
      - V(may) uses STARTTLS when the server offers it and continues in plaintext otherwise.
      - V(encrypt) requires TLS but does not verify the certificate.
      - V(verify) and V(secure) require TLS and a certificate that chains to O(ca_file) (or the
        system trust store when O(ca_file) is not set) and matches O(host).
      - Credentials are never sent over a plaintext session unless O(allow_plaintext_auth=true).
    type: str
    choices: [none, may, encrypt, verify, secure]
    default: encrypt
  implicit_tls:
    description:
      - Start TLS from the first byte (SMTPS, usually port 465) instead of using STARTTLS.
      - Like Postfix C(smtp_tls_wrappermode), this needs O(tls) to be V(encrypt), V(verify) or V(secure).
    type: bool
    default: false
  username:
    description:
      - SASL user name. When set, the probe authenticates; O(password) is then required.
      - The user name may appear in messages.
    type: str
  password:
    description:
      - SASL password. Never logged or returned.
    type: str
  mechanisms:
    description:
      - SASL mechanisms the client side supports, in order of preference. Use the mechanisms the
        relay's SASL plugin provides, so that a missing mechanism shows up here before mail is deferred.
      - The probe authenticates with the first of these that the server offers.
    type: list
    elements: str
    choices: [PLAIN, LOGIN, CRAM-MD5]
    default: [PLAIN, LOGIN]
  ca_file:
    description:
      - PEM file of CA certificates to verify the server certificate with, when O(tls=verify) or
        O(tls=secure). Ignored at lower levels.
      - When not set, the system trust store is used.
    type: path
  timeout:
    description:
      - Seconds to wait for the connection and for each server reply.
    type: int
    default: 10
  helo_name:
    description:
      - Name to send with C(EHLO).
      - Defaults to the fully qualified name of the host the task runs on (an address literal when it
        has none).
    type: str
  allow_plaintext_auth:
    description:
      - Allow sending credentials over a session without TLS (O(tls=none), or O(tls=may) when the
        server does not offer STARTTLS).
    type: bool
    default: false
notes:
  - Uses only the Python standard library (C(smtplib), C(ssl)) on the target. When the C(cryptography)
    package is present it is used to read certificate details that Python does not expose for
    unverified sessions; without it, those details come from the standard library.
  - O(tls=verify) and O(tls=secure) are treated alike here; both check the certificate against O(host).
seealso:
  - name: Postfix TLS support
    description: Meaning of the TLS security levels.
    link: https://www.postfix.org/TLS_README.html#client_tls_levels
  - name: Postfix SASL howto
    description: SMTP client authentication in Postfix.
    link: https://www.postfix.org/SASL_README.html#client_sasl
"""

EXAMPLES = r"""
- name: Check that the first upstream accepts our credentials over verified TLS
  smarthost.postfix.smtp_probe:
    host: smtp-a.example.net
    port: 587
    tls: verify
    ca_file: /etc/ssl/certs/ca-certificates.crt
    username: relay-a
    password: "{{ vault_relay_a }}"
  register: probe

- name: Warn when the upstream certificate expires within 30 days
  ansible.builtin.debug:
    msg: "{{ probe.tls.peer_subject }} expires in {{ probe.tls.days_left }} days"
  when: probe.tls.days_left < 30

- name: Probe every relay upstream as the relay role will use it
  smarthost.postfix.smtp_probe:
    host: "{{ item.host }}"
    port: "{{ item.port | default(omit) }}"
    tls: "{{ item.tls | default(omit) }}"
    implicit_tls: "{{ item.implicit_tls | default(omit) }}"
    username: "{{ item.username | default(omit) }}"
    password: "{{ item.password | default(omit) }}"
    ca_file: "{{ relay_tls_ca_file }}"
  loop: "{{ relay_upstreams }}"
  loop_control:
    label: "{{ item.host }}:{{ item.port | default(587) }}"
  no_log: true

- name: Probe the primary and the fallback at the same time, in one module run
  smarthost.postfix.smtp_probe:
    upstreams: "{{ relay_upstreams }}"
    ca_file: "{{ relay_tls_ca_file }}"
    timeout: 5
  register: probes
  failed_when: false
  no_log: true

- name: Say which upstreams failed (the messages never hold a password)
  ansible.builtin.debug:
    msg: "{{ probes.upstreams | selectattr('failed') | map(attribute='msg') | list }}"

- name: Implicit TLS (SMTPS) on port 465, only list the AUTH mechanisms
  smarthost.postfix.smtp_probe:
    host: smtp-b.example.net
    port: 465
    implicit_tls: true
    tls: encrypt
"""

RETURN = r"""
upstreams:
  description:
    - With O(upstreams), one result per upstream, in the same order. Each holds the facts below
      that a single probe returns (RV(host), RV(port), RV(banner), RV(tls) ...) plus C(failed)
      (bool) and, when it failed, C(msg).
  returned: when O(upstreams) is given
  type: list
  elements: dict
  sample:
    - host: smtp-a.example.net
      port: 587
      failed: false
      auth_succeeded: true
    - host: smtp-b.example.net
      port: 587
      failed: true
      msg: connection refused by smtp-b.example.net:587
host:
  description: Host that was probed.
  returned: when O(host) is given
  type: str
  sample: smtp-a.example.net
port:
  description: Port that was probed.
  returned: when O(host) is given
  type: int
  sample: 587
helo_name:
  description: Name sent with EHLO.
  returned: when the server greeted the client
  type: str
  sample: relay1.example.com
banner:
  description: Server greeting, with its reply code.
  returned: when the server greeted the client
  type: str
  sample: 220 smtp-a.example.net ESMTP Postfix
ehlo_capabilities:
  description:
    - EHLO extensions the server announced on the final channel (after STARTTLS when it was used).
  returned: when the server answered EHLO
  type: list
  elements: str
  sample: [PIPELINING, SIZE 10240000, AUTH PLAIN LOGIN, ENHANCEDSTATUSCODES, 8BITMIME]
starttls_offered:
  description: Whether the server announced STARTTLS on the plaintext channel. Always false with implicit TLS.
  returned: when O(host) is given
  type: bool
  sample: true
tls:
  description: The TLS session. All keys but RV(tls.mode) are null when the session is in plaintext.
  returned: when O(host) is given
  type: dict
  contains:
    mode:
      description: How TLS was started.
      type: str
      choices: [none, starttls, implicit]
      sample: starttls
    version:
      description: Negotiated protocol version.
      type: str
      sample: TLSv1.3
    cipher:
      description: Negotiated cipher suite.
      type: str
      sample: TLS_AES_256_GCM_SHA384
    verified:
      description: Whether the certificate chain and host name were verified.
      type: bool
      sample: true
    peer_subject:
      description: Subject of the server certificate.
      type: str
      sample: CN=smtp-a.example.net
    peer_issuer:
      description: Issuer of the server certificate.
      type: str
      sample: CN=Example CA, O=Example
    peer_dns_names:
      description: DNS names in the certificate's subjectAltName extension.
      type: list
      elements: str
      sample: [smtp-a.example.net]
    not_after:
      description: Expiry of the server certificate, ISO 8601 in UTC.
      type: str
      sample: "2027-03-13T12:00:00Z"
    days_left:
      description: Whole days until the certificate expires (negative when it has expired).
      type: int
      sample: 364
auth_mechanisms:
  description: SASL mechanisms the server offers on the final channel.
  returned: when O(host) is given
  type: list
  elements: str
  sample: [PLAIN, LOGIN]
auth_attempted:
  description: Whether the probe tried to authenticate.
  returned: when O(host) is given
  type: bool
  sample: true
auth_mechanism:
  description: Mechanism used to authenticate.
  returned: when authentication was attempted
  type: str
  sample: PLAIN
auth_succeeded:
  description: Whether the server accepted the credentials.
  returned: when O(host) is given
  type: bool
  sample: true
"""

import concurrent.futures
import datetime
import os
import smtplib
import socket
import ssl
import tempfile

from ansible.module_utils.basic import AnsibleModule

try:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

VERIFYING_LEVELS = ('verify', 'secure')
TLS_REQUIRED_LEVELS = ('encrypt', 'verify', 'secure')
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
    if tls in VERIFYING_LEVELS:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ProbeFailed('cannot load CA file %s: %s' % (ca_file, getattr(exc, 'strerror', None) or exc))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


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
        }

    def run(self):
        params = self.params
        if params['implicit_tls'] and params['tls'] not in TLS_REQUIRED_LEVELS:
            raise ProbeFailed('implicit_tls=true needs tls=encrypt, verify or secure (got tls=%s)' % params['tls'])
        context = None
        if params['tls'] != 'none':
            context = build_tls_context(params['tls'], params['ca_file'])
        verified = params['tls'] in VERIFYING_LEVELS
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
        self.smtp.user, self.smtp.password = params['username'], params['password']
        authobject = getattr(self.smtp, 'auth_' + mechanism.lower().replace('-', '_'))
        try:
            self.smtp.auth(mechanism, authobject)
        except smtplib.SMTPAuthenticationError as exc:
            raise ProbeFailed('authentication rejected for user %s: %s %s'
                              % (params['username'], exc.smtp_code, _text(exc.smtp_error)))
        except (OSError, smtplib.SMTPException) as exc:
            raise ProbeFailed(describe_network_error(exc, params, 'AUTH'))
        finally:
            # Do not keep the secret on an object that outlives this step.
            self.smtp.password = None
        self.facts['auth_succeeded'] = True

    def _close(self):
        if self.smtp is None:
            return
        try:
            self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            self.smtp.close()


def upstream_options():
    """The options that describe one upstream: a relay_upstreams entry."""
    return dict(
        host=dict(type='str', required=True),
        port=dict(type='int', default=587),
        mx_lookup=dict(type='bool', default=False),
        tls=dict(type='str', default='encrypt', choices=['none', 'may', 'encrypt', 'verify', 'secure']),
        implicit_tls=dict(type='bool', default=False),
        username=dict(type='str'),
        password=dict(type='str', no_log=True),
    )


def argument_spec():
    spec = upstream_options()
    spec['host'] = dict(type='str')
    spec.update(
        upstreams=dict(type='list', elements='dict', options=upstream_options()),
        mechanisms=dict(type='list', elements='str', default=['PLAIN', 'LOGIN'], choices=['PLAIN', 'LOGIN', 'CRAM-MD5']),
        ca_file=dict(type='path'),
        timeout=dict(type='int', default=10),
        helo_name=dict(type='str'),
        allow_plaintext_auth=dict(type='bool', default=False),
    )
    return spec


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


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_one_of=[('host', 'upstreams')],
        mutually_exclusive=[('upstreams', option) for option in upstream_options()],
        required_together=[('username', 'password')],
        supports_check_mode=True,
    )
    params = module.params
    for upstream in params['upstreams'] or [params]:
        if upstream['password']:
            # no_log already masks it; keep the explicit guard in case the option spec ever changes.
            module.no_log_values.add(upstream['password'])
        if upstream['username'] is not None and upstream['password'] is None:
            module.fail_json(msg='%s:%s: username requires a password' % (upstream['host'], upstream['port']))
    if params['timeout'] <= 0:
        module.fail_json(msg='timeout must be a positive number of seconds, got %s' % params['timeout'])

    if params['upstreams'] is not None:
        results = probe_all(params)
        failures = ['%s:%s: %s' % (item['host'], item['port'], item['msg']) for item in results if item['failed']]
        if failures:
            module.fail_json(msg='; '.join(failures), changed=False, upstreams=results)
        module.exit_json(changed=False, upstreams=results)

    result = probe_one(params)
    if result.pop('failed'):
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
