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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils._relay_model import UPSTREAM_OPTIONS
from ansible_collections.smarthost.postfix.plugins.module_utils._smtp import MECHANISMS, probe_all, probe_one


def argument_spec():
    spec = dict(UPSTREAM_OPTIONS, host=dict(type='str'))
    spec.update(
        upstreams=dict(type='list', elements='dict', options=UPSTREAM_OPTIONS),
        mechanisms=dict(type='list', elements='str', default=list(MECHANISMS[:2]), choices=list(MECHANISMS)),
        ca_file=dict(type='path'),
        timeout=dict(type='int', default=10),
        helo_name=dict(type='str'),
        allow_plaintext_auth=dict(type='bool', default=False),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_one_of=[('host', 'upstreams')],
        mutually_exclusive=[('upstreams', option) for option in UPSTREAM_OPTIONS],
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
