#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: relay_config
short_description: Make Postfix an authenticated smarthost relay in one idempotent run
version_added: 0.1.0
description:
  - Applies the relay model (C(plugins/module_utils/_relay_model.py)) to the host, in this order, in one
    module run, and is the module behind the P(smarthost.postfix.relay#role) role.
  - "1. Checks the whole input: every field and cross-field rule, before anything on the host changes.
    A refusal names each bad field and never shows a secret."
  - "2. Looks up the host's OS (C(/etc/os-release), with the distro library of Ansible's module utilities) and
    picks its entry of O(os_variables); installs the packages that are missing (C(apt-get) or C(dnf))."
  - "3. Reads the live state (C(main.cf), C(master.cf), the relay's lookup tables, C(/etc/aliases), whether Postfix
    runs and starts at boot) and computes the wanted one."
  - "4. Has Postfix check a staging copy of the new C(main.cf) and C(master.cf)."
  - "5. When the upstream settings differ from the live ones (next-hops, credentials, TLS policy, CA file,
    timeouts, the routes' transports), probes every upstream of every route at once (EHLO, TLS with the SNI
    Postfix will send, AUTH with the route's mechanisms and client certificate; no mail is sent). A failing
    primary of any route stops the run with the live configuration unchanged; a failing fallback is a warning."
  - "6. Writes the tables, the plain files (regexp tables, client certificates), C(master.cf) (tlsproxy, and the
    block of the routes' transports between its markers) and C(main.cf), updates the root alias, reloads Postfix,
    removes the relay files it no longer wants (C(relay_*) in the config directory)."
  - "7. Starts Postfix at boot and now where it is not, or restarts it for a listener change (O(service))."
  - On the controller, its action takes the options from the play's variables (O(variables_prefix)) and copies
    the OAuth2 hop's wheels to the host (O(oauth2_wheels_from)).
  - Routes (O(routes)) are smtp transports of their own in C(master.cf), chosen by sender
    (C(sender_dependent_default_transport_maps)) or recipient domain (C(transport_maps)), each with its own SASL
    map, TLS policy map, wrappermode, fallbacks, mechanism filter, client certificate and limits.
  - A second run with the same input changes nothing and probes nothing.
author:
  - smarthost.postfix contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - smarthost.postfix.writes_config
options:
  state:
    description:
      - V(present) configures the relay. V(absent) writes a local-only C(main.cf), removes the relay's tables
        and the root alias, and leaves Postfix running with its queue.
    type: str
    choices: [present, absent]
    default: present
  upstreams:
    description:
      - Ordered upstream SMTP servers. The first becomes C(relayhost), the rest C(smtp_fallback_relay), each
        with its own credentials and TLS policy, keyed by the same next-hop (C([host]:port)).
      - Required (at least one) with O(state=present).
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: Host name or IP address of the upstream.
        type: str
        required: true
      port:
        description: TCP port. Use 465 with O(upstreams[].implicit_tls=true).
        type: int
        default: 587
      mx_lookup:
        description: Look up MX records for O(upstreams[].host) (next-hop written without brackets).
        type: bool
        default: false
      tls:
        description:
          - Postfix TLS security level for this upstream (the TLS policy map).
          - V(none) with credentials needs O(allow_plaintext_auth=true).
        type: str
        choices: [none, may, encrypt, verify, secure]
        default: encrypt
      implicit_tls:
        description:
          - TLS from the first byte (port 465) instead of STARTTLS. Needs O(upstreams[].tls) V(encrypt) or stronger.
          - All upstreams of the list use implicit TLS or none does (Postfix sets it per transport); put the others in a
            route of their own (O(routes)).
        type: bool
        default: false
      servername:
        description:
          - Name sent in TLS SNI (the TLS policy's C(servername=)). Default the host name with O(upstreams[].tls) V(verify)
            or V(secure), none otherwise, never for an IP address. A DNS name; not with tls V(none).
        type: str
      username:
        description: SASL user name, together with O(upstreams[].password); no C(:), no blanks at either end.
        type: str
      password:
        description: SASL password. Never in any output; stored only in the 0600 SASL map.
        type: str
      auth:
        description:
          - How the upstream authenticates; default V(oauth2) with O(upstreams[].oauth2), else V(password) (no AUTH without
            credentials).
          - V(oauth2) (XOAUTH2) goes through the OAuth2 hop (emailproxy as the systemd service C(smarthost-oauth2-hop)),
            which Postfix reaches on 127.0.0.1 (one port per OAuth2 upstream, from 10587) with AUTH PLAIN, the client secret
            (or a value derived from the key) being the SASL password. The hop's ports are guarded (nftables table
            C(inet smarthost_oauth2_hop), loaded by the hop's unit) - only Postfix (user C(postfix)) and root may connect, only
            the hop may answer; proved after every start and on every run by a connection as C(nobody) that must be refused.
            O(upstreams[].username) is the mailbox; O(upstreams[].tls) V(encrypt) or stronger (the hop
            always verifies the certificate and host name against O(tls_ca_file)). Needs O(oauth2_wheels).
        type: str
        choices: [none, password, oauth2]
      oauth2:
        description: The identity provider's settings of an upstream with O(upstreams[].auth=oauth2).
        type: dict
        suboptions:
          flow:
            description:
              - The OAuth2 grant; V(client_credentials) (Microsoft's for apps, C(SMTP.SendAsApp)), with a client secret or a
                certificate, or V(service_account) (Google Workspace, domain-wide delegation; the mailbox is the subject).
            type: str
            choices: [client_credentials, service_account]
            default: client_credentials
          tenant:
            description: Microsoft Entra tenant; sets the token endpoint and the default scope. One of this and O(upstreams[].oauth2.token_url).
            type: str
          token_url:
            description:
              - The token endpoint, an C(https) URL without query.
              - With V(service_account) it replaces the key's C(token_uri); unset, the key's is used.
            type: str
          client_id:
            description: The application (client) id. Required with V(client_credentials).
            type: str
          client_secret:
            description:
              - The client secret (V(client_credentials)), or O(upstreams[].oauth2.client_certificate) and
                O(upstreams[].oauth2.client_key). Never in any output; stored only in the 0600 SASL map.
            type: str
          client_certificate:
            description: Certificate credentials - the app's certificate (PEM, one C(CERTIFICATE) block), with O(upstreams[].oauth2.client_key).
            type: str
          client_key:
            description:
              - The certificate's RSA private key (unencrypted PEM). Never in any output; stored only in a 0600 file of the
                hop's user (C(/etc/smarthost-oauth2/PORT.key)).
            type: str
          service_account_key:
            description:
              - V(service_account) - the key (the JSON of the key file, or the same as a dict) with C(type), C(client_email),
                C(private_key) and C(token_uri). Never in any output; stored only in a 0600 file of the hop's user
                (C(/etc/smarthost-oauth2/PORT.json)).
            type: raw
          scope:
            description:
              - The scope; required with O(upstreams[].oauth2.token_url) and V(client_credentials).
              - V(service_account) defaults to C(https://mail.google.com/).
            type: str
  routes:
    description:
      - Routes besides the default route (O(upstreams)), each its own master.cf smtp transport C(relay-NAME) with its own
        upstreams. Mail from one of O(routes[].senders) or to one of O(routes[].domains) takes the route; a domain wins
        over a sender.
      - Each sender and domain belongs to one route. See the relay role's documentation for every rule.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The route's name, 1-32 lower-case letters, digits and inner C(-); the transport is C(relay-NAME).
        type: str
        required: true
      senders:
        description: Envelope senders of the route, C(user@domain) or C(@domain).
        type: list
        elements: str
        default: []
      domains:
        description: Recipient domains of the route, C(example.com) exactly or C(.example.com) for its subdomains.
        type: list
        elements: str
        default: []
      upstreams:
        description: The route's ordered upstreams, as O(upstreams); all implicit TLS or none.
        type: list
        elements: dict
        required: true
        suboptions:
          host: {description: "As O(upstreams[].host).", type: str, required: true}
          port: {description: "As O(upstreams[].port).", type: int, default: 587}
          mx_lookup: {description: "As O(upstreams[].mx_lookup).", type: bool, default: false}
          tls: {description: "As O(upstreams[].tls).", type: str, choices: [none, may, encrypt, verify, secure], default: encrypt}
          implicit_tls: {description: "As O(upstreams[].implicit_tls); all of the route's upstreams or none.", type: bool,
                         default: false}
          servername: {description: "As O(upstreams[].servername).", type: str}
          username: {description: "As O(upstreams[].username).", type: str}
          password: {description: "As O(upstreams[].password).", type: str}
          auth: {description: "As O(upstreams[].auth).", type: str, choices: [none, password, oauth2]}
          oauth2:
            description: As O(upstreams[].oauth2).
            type: dict
            suboptions:
              flow: {description: "As O(upstreams[].oauth2.flow).", type: str, choices: [client_credentials, service_account],
                     default: client_credentials}
              tenant: {description: "As O(upstreams[].oauth2.tenant).", type: str}
              token_url: {description: "As O(upstreams[].oauth2.token_url).", type: str}
              client_id: {description: "As O(upstreams[].oauth2.client_id).", type: str}
              client_secret: {description: "As O(upstreams[].oauth2.client_secret).", type: str}
              client_certificate: {description: "As O(upstreams[].oauth2.client_certificate).", type: str}
              client_key: {description: "As O(upstreams[].oauth2.client_key).", type: str}
              service_account_key: {description: "As O(upstreams[].oauth2.service_account_key).", type: raw}
              scope: {description: "As O(upstreams[].oauth2.scope).", type: str}
      sender_address:
        description: Rewrite the route's senders to this address on receipt (envelope and C(From) header). Needs O(routes[].senders).
        type: str
      keep_reply_to:
        description: With O(routes[].sender_address), the original C(From) becomes C(Reply-To).
        type: bool
        default: false
      sasl_mechanisms:
        description: The route's SASL mechanism filter, of V(PLAIN), V(LOGIN), V(CRAM-MD5) (C(smtp_sasl_mechanism_filter)).
        type: list
        elements: str
      tls_client_cert:
        description: PEM client certificate of the route (C(smtp_tls_cert_file)), with O(routes[].tls_client_key).
        type: str
      tls_client_key:
        description: Unencrypted PEM private key of O(routes[].tls_client_cert). Never in any output; stored 0600.
        type: str
      concurrency_limit:
        description: Parallel deliveries to the route's next-hop, 1-100 (C(relay-NAME_destination_concurrency_limit)).
        type: int
      rate_delay:
        description: Seconds between deliveries to the route's next-hop, 0-3600 (C(relay-NAME_destination_rate_delay)).
        type: int
        default: 0
  mynetworks:
    description:
      - Client networks (CIDR) allowed to relay. Everyone else gets C(554 5.7.1 Relay access denied).
      - All of IPv4 or IPv6, and public networks wider than a /24 (IPv4) or /48 (IPv6), are refused
        unless O(allow_wide_mynetworks=true).
    type: list
    elements: str
    default: ['127.0.0.0/8', '[::1]/128']
  allow_wide_mynetworks:
    description: Accept O(mynetworks) entries that let all or much of the Internet relay (an open relay).
    type: bool
    default: false
  inet_interfaces:
    description: Where Postfix listens. V(loopback-only), V(all), or a list of IP addresses.
    type: raw
    default: loopback-only
  tls_ca_file:
    description:
      - CA bundle for O(upstreams[].tls) V(verify) and V(secure) (C(smtp_tls_CAfile)); must be readable then.
      - Default from O(os_variables), else C(/etc/ssl/certs/ca-certificates.crt).
    type: str
  allow_plaintext_auth:
    description: Allow credentials without TLS (C(smtp_sasl_security_options) without C(noplaintext)).
    type: bool
    default: false
  connect_timeout:
    description: Seconds to wait for a TCP connection to an upstream address (C(smtp_connect_timeout)), 1-300.
    type: int
    default: 5
  helo_timeout:
    description: Seconds to wait for the greeting and the EHLO reply (C(smtp_helo_timeout)), 1-300.
    type: int
    default: 30
  upstream_address_limit:
    description:
      - Addresses of one upstream tried before the next upstream (C(smtp_mx_address_limit)), 1-10.
      - Giving up on an upstream that drops packets takes at most O(connect_timeout) times this, whatever
        the number of addresses its name resolves to.
    type: int
    default: 1
  myhostname:
    description: Postfix C(myhostname). Default is the host's FQDN.
    type: str
  myorigin:
    description: Domain appended to local sender addresses (C(myorigin)).
    type: str
    default: $myhostname
  sender_address:
    description: Every address of the local domains is rewritten to this address on the way out (C(smtp_generic_maps)).
    type: str
  sender_address_scope:
    description:
      - V(local) rewrites the local domains to O(sender_address) on the way out (C(smtp_generic_maps)).
      - V(all) rewrites every sender not of a route to O(sender_address) on receipt (C(sender_canonical_maps), C(header_checks)).
    type: str
    choices: [local, all]
    default: local
  keep_reply_to:
    description: With O(sender_address_scope=all), the original C(From) header becomes C(Reply-To).
    type: bool
    default: false
  sender_rewrite:
    description: Explicit C(smtp_generic_maps) entries, local address or C(@domain) to address; they win over O(sender_address).
    type: dict
    default: {}
  sender_allowlist:
    description: SMTP clients may send only from these senders (C(user@domain), C(@domain)); others get C(554) at RCPT.
    type: list
    elements: str
  recipient_domains:
    description: SMTP clients may send only to these domains (and this host's own); others get C(554) at RCPT.
    type: list
    elements: str
  sasl_mechanisms:
    description: The default route's SASL mechanism filter, of V(PLAIN), V(LOGIN), V(CRAM-MD5).
    type: list
    elements: str
  tls_client_cert:
    description: PEM client certificate of the default route (C(smtp_tls_cert_file)), with O(tls_client_key).
    type: str
  tls_client_key:
    description: Unencrypted PEM private key of O(tls_client_cert). Never in any output; stored 0600.
    type: str
  concurrency_limit:
    description: Parallel deliveries to the default route's next-hop, 1-100 (C(smtp_destination_concurrency_limit)).
    type: int
  rate_delay:
    description: Seconds between deliveries to the default route's next-hop, 0-3600 (C(smtp_destination_rate_delay)).
    type: int
    default: 0

  root_forward:
    description: Address that receives local mail for root (an entry in O(aliases_file)). Unset removes the entry.
    type: str
  tls_connection_reuse:
    description: Reuse TLS connections to the upstreams through tlsproxy, which is enabled in C(master.cf).
    type: bool
    default: true
  extra_parameters:
    description:
      - More C(main.cf) parameters, name to value. Postfix must know every name (the staging check).
      - Parameters the relay writes, and those that would open relaying or take routing away from it, are refused.
    type: dict
    default: {}
  map_type:
    description:
      - Lookup table type for the relay's tables and the aliases.
      - Default from O(os_variables), else V(hash).
    type: str
    choices: [btree, cdb, hash, lmdb]
  session_cache_type:
    description:
      - Table type of the TLS session cache (C(smtp_tls_session_cache_database)).
      - Default from O(os_variables), else V(btree).
    type: str
    choices: [btree, lmdb]
  preflight:
    description:
      - Probe the upstreams before new upstream settings go live (see the description). No probe runs when
        the upstream settings are the live ones.
    type: bool
    default: true
  os_variables:
    description:
      - What differs between operating systems, by Ansible's C(os_family) (V(Debian), V(RedHat)) and by
        C(os_family-major version) (V(RedHat-10)), each a dictionary with any of C(packages), C(hop_packages) (for the OAuth2 hop), C(map_type_packages),
        C(tls_ca_file), C(map_type) and C(session_cache_type). The module looks up the host's OS itself in
        C(/etc/os-release) (an ID or ID_LIKE of V(debian) is the Debian family, V(rhel) or V(fedora) the RedHat family)
        and merges the entry of its version over the entry of its family; an option given explicitly wins.
      - An OS that has no entry fails the module, before anything changes.
      - The relay role passes its C(vars/main.yml).
    type: dict
    default: {}
  packages:
    description:
      - Packages that must be installed (Postfix and the SASL client plugin of the OS).
      - Default from O(os_variables).
    type: list
    elements: str
    default: []
  map_type_packages:
    description:
      - Map type to the package that adds it to Postfix, where the OS ships one (for example V(lmdb) to V(postfix-lmdb)).
      - Default from O(os_variables).
    type: dict
    default: {}
  config_directory:
    description: The Postfix configuration directory.
    type: path
    default: /etc/postfix
  aliases_file:
    description: The aliases file of C(alias_maps) and C(alias_database).
    type: path
    default: /etc/aliases
  oauth2_wheels:
    description:
      - Directory on the host with the OAuth2 hop's wheels and C(oauth2-hop-requirements.txt) (pinned, with hashes), from
        which the hop's venv is installed offline. Needed with an OAuth2 upstream while the hop is not installed from the
        same requirements. The relay role copies it there from the controller.
    type: path
  oauth2_wheels_from:
    description:
      - Directory on the controller with the OAuth2 hop's wheels; the action copies its content and the pinned
        C(oauth2-hop-requirements.txt) (found in the role's or the playbook's C(files)) to O(oauth2_wheels) on the host
        before the module runs. Null or empty copies nothing.
    type: path
  variables_prefix:
    description:
      - Take every option the task does not give from the play's variable named by this prefix and the option
        (V(relay_) and O(upstreams) read C(relay_upstreams)), where the variable is defined and neither null nor empty;
        all but O(os_variables), O(packages), O(map_type_packages), O(config_directory), O(aliases_file),
        O(oauth2_wheels), O(oauth2_wheels_from) and O(field_prefix). The relay role sets V(relay_).
      - Also the default of O(field_prefix).
    type: str
  service:
    description:
      - Start Postfix at boot and now when it is not, and restart it when a listener changed (C(inet_interfaces) or
        C(inet_protocols), for which a reload does not open new listeners); a running Postfix whose other settings
        changed is reloaded either way.
      - Through systemd (the C(postfix) unit) where the host runs it; elsewhere with Postfix's own C(postfix start) and
        C(postfix stop), which cannot start it at boot (RV(enabled=false)).
      - V(false) leaves starting, enabling and restarting to the caller (RV(restart_needed) says when a restart is due).
    type: bool
    default: true
  field_prefix:
    description: Put before every field name in error messages; the relay role sets V(relay_) so that they name its variables.
    type: str
    default: ''
notes:
  - Ansible logs module arguments to the target's syslog before the module runs; set C(no_target_syslog)
    (E(ANSIBLE_NO_TARGET_SYSLOG)) to keep the passwords out of it, as the relay role does.
  - A change of C(inet_interfaces) or C(inet_protocols) needs a restart; the module restarts Postfix itself
    (O(service=true)) or returns RV(restart_needed=true) for the caller to do it.
seealso:
  - module: smarthost.postfix.postfix_config
  - module: smarthost.postfix.smtp_probe
  - name: Postfix SASL howto
    description: Client-side SASL authentication.
    link: https://www.postfix.org/SASL_README.html#client_sasl
attributes:
  check_mode:
    support: full
    details:
      - Checks the input, runs the staging check and the preflight where one is due, and reports what would change.
      - On a host without the packages it reports the installation and cannot preview the configuration.
  diff_mode:
    support: full
    details: One diff per changed file; the SASL map's values are masked.
  action:
    support: full
    details: The controller takes the options from the play's variables (O(variables_prefix)) and copies the OAuth2 hop's
      wheels (O(oauth2_wheels_from)).
  async:
    support: none
  bypass_host_loop:
    support: none
requirements:
  - Postfix on the target (installed by the module through O(packages)); C(apt-get) and C(dpkg-query), or C(dnf) and C(rpm).
"""

EXAMPLES = r"""
- name: Relay everything through an authenticated smarthost with a fallback
  smarthost.postfix.relay_config:
    upstreams:
      - host: smtp-a.example.net
        tls: verify
        username: relay-a
        password: "{{ vault_relay_a_password }}"
      - host: smtp-b.example.net
        username: relay-b
        password: "{{ vault_relay_b_password }}"
    mynetworks: [127.0.0.0/8, "[::1]/128", 192.0.2.0/24]
    inet_interfaces: all
    os_variables:
      Debian: {packages: [postfix, libsasl2-modules]}
      RedHat: {packages: [postfix, cyrus-sasl-plain], tls_ca_file: /etc/pki/tls/certs/ca-bundle.crt}
  vars:
    ansible_no_target_syslog: true
  register: relay

- name: Configure the relay, leaving its restart for a new listener to a maintenance window
  smarthost.postfix.relay_config:
    upstreams:
      - host: smtp-a.example.net
        username: relay-a
        password: "{{ vault_relay_a_password }}"
    inet_interfaces: all
    service: false
  vars:
    ansible_no_target_syslog: true
  register: relay

- name: Restart Postfix when the listener changed
  ansible.builtin.service:
    name: postfix
    state: restarted
  when: relay.restart_needed

- name: Back to local-only delivery
  smarthost.postfix.relay_config:
    state: absent
"""

RETURN = r"""
installed:
  description: Packages this run installed (or, in check mode, would install).
  returned: always
  type: list
  elements: str
  sample: [postfix, libsasl2-modules]
main_cf_changed:
  description: Whether C(main.cf) was (or would be) replaced.
  returned: always
  type: bool
  sample: true
master_cf_changed:
  description: Whether C(master.cf) was (or would be) replaced (a service enabled, the routes' block changed).
  returned: always
  type: bool
  sample: true
files:
  description: One result per plain file (regexp tables, client certificates) with C(path) and C(changed).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /etc/postfix/relay_sender_allowlist
      changed: true
enabled_services:
  description: C(master.cf) services this run enabled.
  returned: always
  type: list
  elements: str
  sample: [tlsproxy/unix]
tables:
  description: One result per lookup table written or checked, with C(path), C(changed) and C(changed_keys) (next-hops or addresses, never values).
  returned: always
  type: list
  elements: dict
  sample:
    - path: /etc/postfix/relay_sasl_passwd
      changed: true
      changed_keys: ["[smtp-a.example.net]:587"]
aliases_changed:
  description: Whether the root alias or the aliases database changed.
  returned: always
  type: bool
  sample: false
removed:
  description: Relay files that were (or would be) removed because the wanted state has no use for them.
  returned: always
  type: list
  elements: str
  sample: [/etc/postfix/relay_generic, /etc/postfix/relay_generic.db]
preflight:
  description:
    - Whether the preflight ran, why (the upstream settings that differ from the live ones), and each upstream's
      result (C(route), null for the default route, C(nexthop), C(ok), C(sni) the name sent in SNI or null,
      C(msg) when it failed). An OAuth2 upstream has two entries, its own next-hop (EHLO must offer C(AUTH XOAUTH2)) and
      the hop's listener (a login through the hop); in check mode the latter has C(ok) null when the hop does not run
      with the new settings yet.
  returned: always
  type: dict
  sample:
    ran: true
    reasons: [relayhost, relay_sasl_passwd]
    upstreams:
      - route: null
        nexthop: "[smtp-a.example.net]:587"
        ok: true
        sni: smtp-a.example.net
oauth2_hop:
  description:
    - The OAuth2 hop - C(wanted) (an OAuth2 upstream exists), C(changed) (installed, rewritten, restarted or removed, or would
      be), C(restarted), C(removed), and C(listeners), the hop's next-hops in Postfix's maps.
  returned: always
  type: dict
  sample:
    wanted: true
    changed: false
    restarted: false
    removed: false
    listeners: ["[127.0.0.1]:10587"]
reloaded:
  description: Whether Postfix was reloaded.
  returned: always
  type: bool
  sample: true
restart_needed:
  description: Whether a listener change (C(inet_interfaces), C(inet_protocols)) needed a restart of a running Postfix
    (done when O(service=true), see RV(restarted)).
  returned: always
  type: bool
  sample: false
started:
  description: Whether the module started Postfix (it was not running); in check mode, whether it would.
  returned: always
  type: bool
  sample: false
restarted:
  description: Whether the module restarted Postfix for a listener change; in check mode, whether it would.
  returned: always
  type: bool
  sample: false
running:
  description: Whether Postfix runs when the module ends (in check mode, when it looked).
  returned: always
  type: bool
  sample: true
enabled:
  description: Whether the postfix service starts at boot (systemd); false where that cannot be told.
  returned: always
  type: bool
  sample: true
service_mgr:
  description: How the module starts and restarts Postfix, V(systemd) where the host runs it, else V(postfix) (its own
    start and stop commands).
  returned: always
  type: str
  sample: systemd
"""

import json
import os
import shutil
import socket
import tempfile

from ansible.module_utils import distro
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils._config import (
    ConfigChange,
    diff_entry,
    removal_entry,
    read_block,
    replace_block,
    write_file,
)
from ansible_collections.smarthost.postfix.plugins.module_utils._hop import HopState
from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import (
    MAP_SUFFIXES,
    PostfixError,
    last_lines,
    parse_main_cf,
    run_module,
)
from ansible_collections.smarthost.postfix.plugins.module_utils._relay_model import (
    ALIASES_MARKER,
    LISTENER_PARAMETERS,
    OAUTH2_MECHANISM,
    MASTER_CF_MARKER,
    OPTIONS,
    OS_OPTIONS,
    OS_VARIABLES,
    VERIFYING_TLS,
    Host,
    InputError,
    load,
    module_argument_spec,
)
from ansible_collections.smarthost.postfix.plugins.module_utils._tables import private_umask, read_source

# How each package manager installs; the first whose query tool exists is the host's.
PACKAGE_MANAGERS = (
    ('dpkg-query', 'apt-get', {'DEBIAN_FRONTEND': 'noninteractive'}),
    ('rpm', 'dnf', {}),
)
APT_OPTIONS = ['-q', '-y', '-o', 'DPkg::Lock::Timeout=120', '-o', 'Dpkg::Options::=--force-confdef',
               '-o', 'Dpkg::Options::=--force-confold']


class Packages(object):
    """The host's package manager: which packages are missing, and installing them."""

    def __init__(self, module):
        self.module = module
        for query, installer, environ in PACKAGE_MANAGERS:
            if module.get_bin_path(query):
                self.query, self.installer, self.environ = query, installer, environ
                return
        raise PostfixError('neither dpkg-query nor rpm found: the relay supports the Debian and RHEL families')

    def missing(self, names):
        if not names:
            return []
        if self.query == 'dpkg-query':
            argv = [self.module.get_bin_path('dpkg-query'), '-W', '-f=${db:Status-Status} ${Package}\\n'] + names
            dummy, out, dummy = self.module.run_command(argv, environ_update={'LC_ALL': 'C'})
            installed = [line.split(' ', 1)[1] for line in out.split('\n') if line.startswith('installed ')]
        else:
            argv = [self.module.get_bin_path('rpm'), '-q', '--qf', '%{NAME}\\n'] + names
            dummy, out, dummy = self.module.run_command(argv, environ_update={'LC_ALL': 'C'})
            installed = [line.strip() for line in out.split('\n') if line.strip() and ' ' not in line.strip()]
        return [name for name in names if name not in installed]

    def install(self, names):
        binary = self.module.get_bin_path(self.installer, required=True)
        environ = dict(self.environ, LC_ALL='C')
        steps = [[binary, '-q', 'update'], [binary] + APT_OPTIONS + ['install'] + names] if self.installer == 'apt-get' \
            else [[binary, '-y', 'install'] + names]
        for argv in steps:
            rc, out, err = self.module.run_command(argv, environ_update=environ)
            if rc != 0:
                raise PostfixError('installing %s failed (%s exit status %d): %s'
                                   % (', '.join(names), os.path.basename(binary), rc, last_lines(err or out)))


def aliases_text(text, root_forward):
    """The aliases file with the managed root entry first (newaliases keeps the first of duplicate keys)."""
    return replace_block(text, ALIASES_MARKER, 'root: %s\n' % root_forward if root_forward else '', first=True)


class ClientCertificates(object):
    """The routes' TLS client certificates and keys in a private directory, for the checks before any write.

    Python's ssl loads them (a key that does not belong to its certificate is refused before the host
    changes) and the preflight presents them as Postfix will. Removed by cleanup().
    """

    def __init__(self, directory):
        self.directory = directory
        self.private = None
        self.paths = {}

    def load(self, routes, name):
        for route in routes:
            if route.tls_client_cert is None:
                continue
            if self.private is None:
                self.private = tempfile.mkdtemp(prefix='.client-certificates.', dir=self.directory)
            cert, key = os.path.join(self.private, route.cert_file), os.path.join(self.private, route.key_file)
            with private_umask():
                for path, text in ((cert, route.tls_client_cert), (key, route.tls_client_key)):
                    with open(path, 'w') as handle:
                        handle.write(text)
            # Imported only where a route has a certificate: a no-op run of the others needs no ssl.
            import ssl

            try:
                ssl.create_default_context().load_cert_chain(cert, key)
            except ssl.SSLError as exc:
                raise PostfixError('%s: the key does not fit the certificate, or one of them cannot be read (%s)'
                                   % (name(route.option('tls_client_key')), exc.reason or type(exc).__name__))
            self.paths[route.transport] = (cert, key)

    def cleanup(self):
        if self.private is not None:
            shutil.rmtree(self.private, ignore_errors=True)
            self.private = None


# Ansible's os_family names of the families the relay supports, by the os-release ID (or one of the
# ID_LIKE names) that leads to them: Ubuntu is "like debian", Rocky and AlmaLinux "like rhel",
# RHEL, Oracle Linux and Amazon Linux "like fedora".
OS_RELEASE_FAMILIES = {'debian': 'Debian', 'rhel': 'RedHat', 'fedora': 'RedHat'}


def host_release(root_dir=None):
    """The host's /etc/os-release (or its distribution's release file), read by the distro library that
    ships with Ansible's module utilities; no lsb_release or uname commands."""
    if root_dir:
        return distro.LinuxDistribution(root_dir=root_dir)
    return distro.LinuxDistribution(include_lsb=False, include_uname=False, include_oslevel=False)


def os_entry(module, table, release=None):
    """The host's entry of os_variables: its family's, with its version's merged over it."""
    if not table:
        return {}
    release = release or host_release()
    names = [release.id()] + release.like().split()
    family = next((OS_RELEASE_FAMILIES[name] for name in names if name in OS_RELEASE_FAMILIES), None)
    major = release.major_version()
    if family not in table:
        raise PostfixError('%sos_variables has no entry for this OS (%s %s, os-release ID %s%s); entries: %s'
                           % (module.params['field_prefix'], release.name(), major, names[0] or 'unknown',
                              ', ID_LIKE %s' % ' '.join(names[1:]) if names[1:] else '', ', '.join(sorted(table))))
    entry = {}
    for key in (family, '%s-%s' % (family, major)):
        for name, value in (table.get(key) or {}).items():
            if name not in OS_VARIABLES:
                raise PostfixError('os_variables.%s.%s: not one of %s' % (key, name, ', '.join(OS_VARIABLES)))
            entry[name] = value
    return entry


def systemd_runs():
    """Whether the host was booted with systemd (what sd_booted() checks)."""
    return os.path.isdir('/run/systemd/system')


class RelayRun(object):
    """One run of the module: plan everything, check it, probe when due, apply."""

    def __init__(self, module):
        self.module = module
        params = module.params
        self.directory = params['config_directory']
        self.os = os_entry(module, params['os_variables'])
        values = dict((name, params[name]) for name in OPTIONS)
        for name in OS_OPTIONS:
            if values[name] is None:
                values[name] = self.os.get(name)
        self.relay = load(values, params['field_prefix'], self.directory, params['aliases_file'])
        self.result = dict(changed=False, installed=[], main_cf_changed=False, master_cf_changed=False,
                           enabled_services=[], tables=[], files=[], aliases_changed=False, removed=[],
                           preflight=dict(ran=False, reasons=[], upstreams=[]), reloaded=False, restart_needed=False,
                           started=False, restarted=False, running=False, enabled=False,
                           service_mgr='systemd' if systemd_runs() else 'postfix')

    def name(self, field):
        return self.module.params['field_prefix'] + field

    def run(self):
        module, relay, result = self.module, self.relay, self.result
        self.install()
        if result['installed'] and module.check_mode:
            result['changed'] = True
            result['msg'] = ('%s not installed yet: check mode cannot preview the relay configuration'
                             % ', '.join(result['installed']))
            return result
        change = ConfigChange(module, self.directory)
        postfix = change.postfix
        # Asked together: the queue directory tells whether Postfix runs (change.running()).
        defaults = postfix.defaults('mail_version', 'queue_directory')
        wanted = relay.wanted(Host(defaults['mail_version'], socket.getfqdn()))
        certificates = ClientCertificates(self.directory)
        try:
            certificates.load(wanted.routes, self.name)
            written = wanted.written_tables()
            tables = [dict(path=os.path.join(self.directory, table.name), entries=table.entries, state='present',
                           exclusive=True, secret=table.secret, mode=table.mode)
                      for table in written]
            files = [(os.path.join(self.directory, item.name), item.content, item.mode, item.secret)
                     for item in wanted.files if item.content is not None]
            change.plan(wanted.main_cf, wanted.master_cf_enable, tables, relay.map_type,
                        (MASTER_CF_MARKER, wanted.master_cf_block), files)
            change.check()
            self.check_ca_file()
            if wanted.hop:
                # The SASL passwords derived from keys (service account, certificate) are not in the input.
                module.no_log_values.update(wanted.hop.logins)
            hop = HopState(module, wanted.hop, module.params['oauth2_wheels'], module.params['field_prefix'])
            hop.plan([key for plan, table in zip(change.plans, written) if table.secret for key in plan['result']['changed_keys']])
            if not module.check_mode:
                hop.apply()
            aliases_before, aliases_after, aliases_stale = self.plan_aliases(wanted.root_forward)
            remove = [os.path.join(self.directory, name)
                      for name in wanted.removable(os.listdir(self.directory), relay.map_type)]
            live = parse_main_cf(change.main_before)
            result['running'] = change.main_before is not None and change.running()
            self.preflight(wanted, live, change, certificates, hop)
            if module._diff:
                result['diff'] = change.diff() + hop.diff() + (
                    [diff_entry(relay.aliases_path, aliases_before, aliases_after)] if aliases_before != aliases_after else []) + [
                    removal_entry(path) for path in remove]
            result['tables'] = [dict(path=item['path'], changed=item['changed'], changed_keys=item['changed_keys'])
                                for item in change.apply()]
        finally:
            certificates.cleanup()
            change.cleanup()
        result['main_cf_changed'] = change.main_changed
        result['master_cf_changed'] = change.master_changed
        result['enabled_services'] = change.enabled
        result['files'] = [dict(path=item.path, changed=item.changed) for item in change.files]
        result['aliases_changed'] = aliases_before != aliases_after or aliases_stale
        result['removed'] = remove
        result['restart_needed'] = result['running'] and change.main_changed and any(
            self.effective(postfix, name, wanted.parameters) != self.effective(postfix, name, live)
            for name in LISTENER_PARAMETERS)
        tables_changed = any(table['changed'] for table in result['tables'])
        result['changed'] = bool(result['installed'] or change.files_changed or result['aliases_changed'] or remove or tables_changed)
        if not module.check_mode:
            if aliases_before != aliases_after:
                write_file(module, relay.aliases_path, aliases_after)
            if result['aliases_changed']:
                self.build_aliases(postfix)
            if result['running'] and (change.files_changed or tables_changed):
                result['reloaded'] = change.reload()
            for path in remove:
                os.unlink(path)
            hop.remove()
        result['oauth2_hop'] = dict(wanted=wanted.hop is not None, changed=hop.changed, restarted=hop.restarted,
                                    removed=hop.removed, listeners=wanted.hop.nexthops if wanted.hop else [])
        result['changed'] = result['changed'] or hop.changed
        result['enabled'] = self.enabled()
        if module.params['service']:
            self.service(postfix)
        return result

    def install(self):
        params = self.module.params
        names = list(params['packages'] or self.os.get('packages') or [])
        extra = (params['map_type_packages'] or self.os.get('map_type_packages') or {}).get(self.relay.map_type)
        if extra and extra not in names:
            names.append(extra)
        if self.relay.state == 'present' and self.relay.hop_upstreams():
            names.extend(name for name in self.os.get('hop_packages') or [] if name not in names)
        packages = Packages(self.module) if names else None
        missing = packages.missing(names) if names else []
        if missing and not self.module.check_mode:
            packages.install(missing)
        self.result['installed'] = missing

    def effective(self, postfix, name, parameters):
        """A parameter's value in a main.cf (parameters): as written there, else Postfix's default."""
        if name in parameters:
            return parameters[name]
        return postfix.defaults(name)[name]

    def check_ca_file(self):
        relay = self.relay
        if relay.state == 'present' and any(u.tls in VERIFYING_TLS for route in relay.all_routes() for u in route.upstreams) \
                and not os.access(relay.tls_ca_file, os.R_OK):
            raise PostfixError('%s: %s is not readable; upstreams with tls verify or secure need it'
                               % (self.name('tls_ca_file'), relay.tls_ca_file))

    def plan_aliases(self, root_forward):
        path = self.relay.aliases_path
        before = read_source(path)
        after = aliases_text(before, root_forward)
        compiled = path + MAP_SUFFIXES[self.relay.map_type]
        stale = not os.path.exists(compiled) or (before is not None and os.stat(compiled).st_mtime < os.stat(path).st_mtime)
        return before, after, stale

    def build_aliases(self, postfix):
        argv = [postfix.binary('postalias'), '-c', self.directory, '%s:%s' % (self.relay.map_type, self.relay.aliases_path)]
        rc, dummy, err = postfix.run(argv)
        if rc != 0:
            raise PostfixError('postalias failed to build the aliases database: %s' % last_lines(err))

    def preflight_reasons(self, wanted, live, change):
        """The upstream settings that differ from the live ones: main.cf parameters, maps, files, routes."""
        probe_files = dict((os.path.join(self.directory, item.name), item.probe) for item in wanted.files)
        reasons = wanted.probe_parameters(live)
        reasons += [os.path.basename(plan['result']['path']) for plan, table in zip(change.plans, wanted.written_tables())
                    if table.probe and plan['rebuild']]
        reasons += [os.path.basename(item.path) for item in change.files if item.rewrite and probe_files[item.path]]
        if read_block(change.master_before, MASTER_CF_MARKER) != wanted.master_cf_block:
            reasons.append('master.cf routes')
        return reasons

    def preflight(self, wanted, live, change, certificates, hop):
        """Probe every upstream of every route when the upstream settings differ from the live ones.

        An OAuth2 upstream is probed twice: through the hop (AUTH PLAIN with the secret: the hop fetches a
        token and logs in upstream with XOAUTH2), and directly (its EHLO must offer XOAUTH2). In check mode
        a hop that does not run with the new settings yet cannot be probed through (its result says so).
        Raises when the primary of any route fails; a failing fallback is a warning.
        """
        relay, report = self.relay, self.result['preflight']
        reasons = self.preflight_reasons(wanted, live, change) + hop.reasons()
        if relay.state != 'present' or not self.module.params['preflight'] or not reasons:
            return
        report.update(ran=True, reasons=reasons)
        # Imported only for a probe: a no-op run needs none of ssl, smtplib and threads.
        from ansible_collections.smarthost.postfix.plugins.module_utils._smtp import probe_all

        probes, skipped = [], []
        for route in wanted.routes:
            cert, key = certificates.paths.get(route.transport, (None, None))
            for upstream in route.upstreams:
                if upstream.auth != 'oauth2':
                    probes.append((route, upstream, None, dict(upstream.probe_params(), mechanisms=route.probe_mechanisms(),
                                                               client_cert_file=cert, client_key_file=key)))
                    continue
                remote = upstream.remote
                # The hop always verifies the upstream (host name and chain, against tls_ca_file).
                probes.append((route, upstream, remote, dict(remote.probe_params(), tls='verify', mechanisms=[])))
                if self.module.check_mode and not hop.current():
                    skipped.append(upstream)
                else:
                    probes.append((route, upstream, None, upstream.probe_params()))
        results = probe_all(dict(
            upstreams=[params for dummy, dummy, dummy, params in probes], ca_file=relay.tls_ca_file,
            allow_plaintext_auth=relay.allow_plaintext_auth, timeout=max(relay.connect_timeout, relay.helo_timeout),
            helo_name=None))
        failed = []
        for route in wanted.routes:
            for upstream in route.upstreams:
                if upstream in skipped:
                    report['upstreams'].append(dict(route=route.name, nexthop=upstream.nexthop, ok=None, sni=None,
                                                    msg='check mode: the OAuth2 hop does not run with the new settings '
                                                        'yet, so no login through it was tried'))
        for (route, upstream, remote, dummy), probe in zip(probes, results):
            if remote is not None and not probe['failed'] and OAUTH2_MECHANISM not in probe['auth_mechanisms']:
                probe.update(failed=True, msg='%s does not offer AUTH %s (offers: %s)' % (
                    remote.nexthop, OAUTH2_MECHANISM, ', '.join(probe['auth_mechanisms']) or 'no AUTH'))
            item = dict(route=route.name, nexthop=(remote or upstream).nexthop, ok=not probe['failed'], sni=probe['sni'])
            if probe['failed']:
                item['msg'] = probe['msg']
                where = (remote or upstream).nexthop + (' (through the OAuth2 hop)' if upstream.remote and not remote else '')
                if upstream is route.upstreams[0]:
                    failed.append('%s %s failed: %s' % (self.name(upstream.field), where, probe['msg'].rstrip('.')))
                else:
                    self.module.warn('preflight: fallback upstream %s %s failed: %s'
                                     % (self.name(upstream.field), where, probe['msg']))
            report['upstreams'].append(item)
        if failed:
            raise PostfixError('Preflight: primary upstream %s. The live %s was not changed. Set %s: false to skip '
                               'this check.' % ('; '.join(failed), 'Postfix configuration (the OAuth2 hop runs with the new '
                                                'settings)' if hop.restarted else 'configuration', self.name('preflight')))

    def enabled(self):
        if self.result['service_mgr'] != 'systemd':
            return False
        dummy, out, dummy = self.module.run_command([self.module.get_bin_path('systemctl', required=True), 'is-enabled', 'postfix'])
        return out.strip() == 'enabled'

    def service(self, postfix):
        """Start Postfix at boot and now, or restart it for a new listener (see the service option)."""
        result = self.result
        start = not result['running']
        # A stopped Postfix opens the new listeners when it starts.
        restart = result['restart_needed'] and not start
        enable = result['service_mgr'] == 'systemd' and not result['enabled']
        result.update(started=start, restarted=restart)
        if not (start or restart or enable):
            return
        result['changed'] = True
        if self.module.check_mode:
            return
        if result['service_mgr'] == 'systemd':
            systemctl = self.module.get_bin_path('systemctl', required=True)
            commands = [[systemctl, 'enable', 'postfix']] if enable else []
            commands += [[systemctl, 'restart' if restart else 'start', 'postfix']] if start or restart else []
            hint = 'journalctl -u postfix'
        else:
            # Postfix's own commands: a restart is a stop and a start.
            commands = [[postfix.binary('postfix'), '-c', self.directory, step] for step in ['stop'] * restart + ['start']]
            hint = "Postfix's log"
        for argv in commands:
            rc, out, err = self.module.run_command(argv, environ_update={'LC_ALL': 'C'})
            if rc != 0:
                raise PostfixError('%s failed (exit status %d): %s; the configuration is written, see %s'
                                   % (' '.join([os.path.basename(argv[0])] + argv[1:]), rc, last_lines(err or out), hint))
        result['running'] = True
        result['enabled'] = result['enabled'] or enable


def apply_relay(module):
    try:
        relay_run = RelayRun(module)
    except InputError as exc:
        raise PostfixError(str(exc))
    return relay_run.run()


def _key_lines(key):
    """A private key (PEM) and its lines that are long enough to be no common word; nothing where no key is given."""
    if not isinstance(key, str) or not key.strip():
        return []
    return [key] + [line.strip() for line in key.split('\n') if len(line.strip()) >= 16]


def _service_account_private_key(value):
    """The private key of a service account key (its JSON text or a dict), if one is there."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value.get('private_key') if isinstance(value, dict) else None


def secrets(params):
    """Every secret of the input that is known only at run time: passwords, client keys (and their lines)."""
    found = []
    for route in [params] + [item for item in params['routes'] or [] if isinstance(item, dict)]:
        for upstream in route.get('upstreams') or []:
            if isinstance(upstream, dict) and upstream.get('password'):
                found.append(str(upstream['password']))
            oauth2 = upstream.get('oauth2') if isinstance(upstream, dict) else None
            if isinstance(oauth2, dict):
                if oauth2.get('client_secret'):
                    found.append(str(oauth2['client_secret']))
                found.extend(_key_lines(oauth2.get('client_key')))
                found.extend(_key_lines(_service_account_private_key(oauth2.get('service_account_key'))))
        found.extend(_key_lines(route.get('tls_client_key')))
    return found


def main():
    module = AnsibleModule(argument_spec=module_argument_spec(), supports_check_mode=True)
    # no_log on the options masks them already; the SASL maps and key files hold them too.
    module.no_log_values.update(secrets(module.params))
    run_module(module, apply_relay, module.params['config_directory'])


if __name__ == '__main__':
    main()
