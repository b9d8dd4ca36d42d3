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
  - O(upstreams) takes the C(relay_upstreams) list of the P(smarthost.postfix.relay#role) role as it is;
    every upstream is probed at the same time, so a fallback that times out does not delay the others.
  - The password is never logged or returned.
author:
  - smarthost.postfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - smarthost.postfix.read_only
options:
  upstreams:
    description:
      - The upstreams to probe, all at the same time in one module run, in the shape of the C(relay_upstreams)
        entries of the P(smarthost.postfix.relay#role) role, so that list can be passed straight through.
      - The module fails when any upstream fails; RV(upstreams) then still says which did and why.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description:
          - Host name or address of the upstream server.
          - This name is also checked against the certificate when O(upstreams[].tls=verify) or V(secure).
        type: str
        required: true
      port:
        description: TCP port of the upstream server.
        type: int
        default: 587
      mx_lookup:
        description:
          - Accepted so that a C(relay_upstreams) entry can be passed unchanged.
          - The probe always connects to O(upstreams[].host) directly and never looks up MX records.
        type: bool
        default: false
      tls:
        description:
          - TLS security level, with the meaning of the Postfix C(smtp_tls_security_level) setting.
          - V(none) never uses TLS, even when the server offers STARTTLS.
          - V(may) uses STARTTLS when the server offers it and continues in plaintext otherwise.
          - V(encrypt) requires TLS but does not verify the certificate.
          - V(verify) and V(secure) require TLS and a certificate that chains to O(ca_file) (or the
            system trust store when O(ca_file) is not set) and matches O(upstreams[].host).
          - Credentials are never sent over a plaintext session unless O(allow_plaintext_auth=true).
        type: str
        choices: [none, may, encrypt, verify, secure]
        default: encrypt
      implicit_tls:
        description:
          - Start TLS from the first byte (SMTPS, usually port 465) instead of using STARTTLS.
          - Like Postfix C(smtp_tls_wrappermode), this needs O(upstreams[].tls) V(encrypt), V(verify) or V(secure).
        type: bool
        default: false
      servername:
        description:
          - The name to send in TLS SNI, as the C(servername=) of a Postfix TLS policy entry.
          - Unset, the probe sends what Postfix sends for the relay's upstream by default, which is
            O(upstreams[].host) with tls V(verify) or V(secure) (unless the host is an IP address), and no SNI
            otherwise. Postfix sends no SNI unless its TLS policy says so, and a server that chooses its
            certificate by SNI would otherwise answer the probe and Postfix differently.
          - The certificate is checked against O(upstreams[].host) whatever the SNI, as Postfix does.
        type: str
        version_added: 0.1.0
      username:
        description:
          - SASL user name. When set, the probe authenticates; O(upstreams[].password) is then required.
          - The user name may appear in messages.
        type: str
      password:
        description:
          - SASL password, sent in UTF-8 (RFC 4616). Never logged or returned; a server reply that quotes
            what was sent during AUTH is withheld from messages.
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
      - PEM file of CA certificates to verify the server certificate with, when O(upstreams[].tls=verify) or
        O(upstreams[].tls=secure). Ignored at lower levels.
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
      - Allow sending credentials over a session without TLS (O(upstreams[].tls=none), or O(upstreams[].tls=may) when the
        server does not offer STARTTLS).
    type: bool
    default: false
notes:
  - Uses only the Python standard library (C(smtplib), C(ssl)) on the target. When the C(cryptography)
    package is present it is used to read certificate details that Python does not expose for
    unverified sessions; without it, those details come from the standard library.
  - V(verify) and V(secure) are treated alike here; both check the certificate against the host name.
seealso:
  - name: Postfix TLS support
    description: Meaning of the TLS security levels.
    link: https://www.postfix.org/TLS_README.html#client_tls_levels
  - name: Postfix SASL howto
    description: SMTP client authentication in Postfix.
    link: https://www.postfix.org/SASL_README.html#client_sasl
"""

EXAMPLES = r"""
- name: Check that the upstream accepts our credentials over verified TLS
  smarthost.postfix.smtp_probe:
    upstreams:
      - host: smtp-a.example.net
        port: 587
        tls: verify
        username: relay-a
        password: "{{ vault_relay_a }}"
    ca_file: /etc/ssl/certs/ca-certificates.crt
  register: probe

- name: Warn when the upstream certificate expires within 30 days
  ansible.builtin.debug:
    msg: "{{ probe.upstreams[0].tls.peer_subject }} expires in {{ probe.upstreams[0].tls.days_left }} days"
  when: probe.upstreams[0].tls.days_left < 30

- name: Probe the relay's primary and fallbacks at the same time, as the relay role will use them
  smarthost.postfix.smtp_probe:
    upstreams: "{{ relay_upstreams }}"
    ca_file: "{{ relay_tls_ca_file }}"
    timeout: 5
  register: probes
  failed_when: false

- name: Say which upstreams failed (the messages never hold a password)
  ansible.builtin.debug:
    msg: "{{ probes.upstreams | selectattr('failed') | map(attribute='msg') | list }}"

- name: Implicit TLS (SMTPS) on port 465, only list the AUTH mechanisms
  smarthost.postfix.smtp_probe:
    upstreams:
      - host: smtp-b.example.net
        port: 465
        implicit_tls: true
"""

RETURN = r"""
upstreams:
  description:
    - One result per entry of O(upstreams), in the same order, with what the probe learned, also when it failed.
  returned: always
  type: list
  elements: dict
  contains:
    failed:
      description: Whether the probe of this upstream failed.
      returned: always
      type: bool
      sample: false
    msg:
      description: Why the probe failed, in plain words (never a password).
      returned: when the probe failed
      type: str
      sample: connection refused by smtp-b.example.net:587
    host:
      description: Host that was probed.
      returned: always
      type: str
      sample: smtp-a.example.net
    port:
      description: Port that was probed.
      returned: always
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
    sni:
      description: The name sent in TLS SNI, or null when none was sent (see O(upstreams[].servername)).
      returned: always
      type: str
      sample: smtp-a.example.net
    starttls_offered:
      description: Whether the server announced STARTTLS on the plaintext channel. Always false with implicit TLS.
      returned: always
      type: bool
      sample: true
    tls:
      description: The TLS session. All keys but RV(upstreams[].tls.mode) are null when the session is in plaintext.
      returned: always
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
      returned: always
      type: list
      elements: str
      sample: [PLAIN, LOGIN]
    auth_attempted:
      description: Whether the probe tried to authenticate.
      returned: always
      type: bool
      sample: true
    auth_mechanism:
      description: Mechanism used to authenticate.
      returned: when authentication was attempted
      type: str
      sample: PLAIN
    auth_succeeded:
      description: Whether the server accepted the credentials.
      returned: always
      type: bool
      sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils._relay_model import DEFAULT_MECHANISMS, MECHANISMS, PROBE_OPTIONS
from ansible_collections.smarthost.postfix.plugins.module_utils._smtp import probe_all


def argument_spec():
    return dict(
        upstreams=dict(type='list', elements='dict', required=True, options=PROBE_OPTIONS),
        mechanisms=dict(type='list', elements='str', default=list(DEFAULT_MECHANISMS), choices=list(MECHANISMS)),
        ca_file=dict(type='path'),
        timeout=dict(type='int', default=10),
        helo_name=dict(type='str'),
        allow_plaintext_auth=dict(type='bool', default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    for upstream in params['upstreams']:
        if upstream['username'] is not None and upstream['password'] is None:
            module.fail_json(msg='%s:%s: username requires a password' % (upstream['host'], upstream['port']))
    if params['timeout'] <= 0:
        module.fail_json(msg='timeout must be a positive number of seconds, got %s' % params['timeout'])
    results = probe_all(params)
    failures = ['%s:%s: %s' % (item['host'], item['port'], item['msg']) for item in results if item['failed']]
    if failures:
        module.fail_json(msg='; '.join(failures), changed=False, upstreams=results)
    module.exit_json(changed=False, upstreams=results)


if __name__ == '__main__':
    main()
