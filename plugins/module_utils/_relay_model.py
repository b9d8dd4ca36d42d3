# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The relay model: the relay's whole input, checked and normalised once, and the Postfix state it wants.

Read this file to know what the relay writes into Postfix and why. It is plain Python without any
access to the host:

- OPTIONS is the input (the relay role's variables without their ``relay_`` prefix, and the options
  of the relay_config module), with its defaults;
- load() checks every field and every cross-field rule and returns a Relay, or raises InputError with
  one message per problem, each naming the field as the caller spells it (``relay_upstreams[0].port``);
- Relay.wanted(host) computes the wanted state: main.cf parameter by parameter (MAIN_CF), the
  master.cf services to enable and the block of the routes' transports, the lookup tables (entries,
  secret or not, mode), the plain files (regexp tables, client certificates) and the root alias.

Routes: the default route is ``upstreams`` (relayhost, smtp_fallback_relay, the ``smtp`` transport of
main.cf). Each entry of ``routes`` is a route of its own: a master.cf smtp transport (ROUTE_TRANSPORT
plus its name) whose ``-o`` overrides carry its own SASL map (only its own credentials), TLS policy map,
wrappermode, fallback list, SASL mechanism filter and client certificate; mail reaches it by sender
(sender_dependent_default_transport_maps) or by recipient domain (transport_maps). Settings Postfix
keeps per transport, not per next-hop, are settings of a route (ROUTE_SETTINGS): the default route takes
them from the top-level options of the same names.

The relay_config module reads the live state, compares and applies; unit tests exercise every rule
here directly. Private to the collection (leading underscore): no compatibility promise to others.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re

from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import (
    BLANKS,
    CONTROL_CHARACTERS,
    MAP_SUFFIXES,
    control_character,
)

# ---- Constants: each defined here once --------------------------------------------------------------

STATES = ('present', 'absent')
DEFAULT_PORT = 587
# Postfix TLS security levels an upstream may have, weakest first.
TLS_LEVELS = ('none', 'may', 'encrypt', 'verify', 'secure')
DEFAULT_TLS = 'encrypt'
ENCRYPTING_TLS = ('encrypt', 'verify', 'secure')
VERIFYING_TLS = ('verify', 'secure')
# The TLS policy's servername value that makes Postfix send the upstream's host name in SNI.
SNI_HOSTNAME = 'hostname'
# SASL mechanisms the preflight's probe speaks, in the order it prefers them (as Postfix's client with
# the PLAIN/LOGIN plugin does); a route's mechanism filter may name these only.
MECHANISMS = ('PLAIN', 'LOGIN', 'CRAM-MD5')
DEFAULT_MECHANISMS = MECHANISMS[:2]
# Postfix to the OAuth2 hop, and the hop to an OAuth2 upstream (which the preflight checks it offers).
HOP_MECHANISM = 'PLAIN'
OAUTH2_MECHANISM = 'XOAUTH2'
MAP_TYPES = tuple(sorted(MAP_SUFFIXES))
SESSION_CACHE_TYPES = ('btree', 'lmdb')
INTERFACE_KEYWORDS = ('all', 'loopback-only')
LOCAL_MYNETWORKS = ('127.0.0.0/8', '[::1]/128')
# relay_sender_address rewrites the local domains only, or every sender the routes do not rewrite.
SENDER_SCOPES = ('local', 'all')
MAX_TIMEOUT = 300
MAX_ADDRESS_LIMIT = 10
MAX_CONCURRENCY = 100
MAX_RATE_DELAY = 3600

# How an upstream authenticates (its auth field): no AUTH, a SASL password, or OAuth2 (XOAUTH2) through the hop.
AUTH_METHODS = ('none', 'password', 'oauth2')
# OAuth2 grants the hop runs unattended: an app's own token (Microsoft's client credentials, with a
# secret or a certificate) and Google's service account with domain-wide delegation (the mailbox is the
# subject). With a certificate or a service account key the SASL password Postfix sends is only the key
# of the hop's token cache (HOP_LOGIN_LABEL): the hop's guard (HOP_GUARD_TEXT) keeps other local users
# off its ports (docs/oauth2-design.md, service-account trap).
OAUTH2_FLOWS = ('client_credentials', 'service_account')
# Microsoft identity platform: the token endpoint of a tenant, and the scope of SMTP AUTH for an app.
MICROSOFT_TOKEN_URL = 'https://login.microsoftonline.com/%s/oauth2/v2.0/token'
MICROSOFT_SCOPE = 'https://outlook.office365.com/.default'
# Google Workspace: the scope of SMTP (and IMAP) for a service account, and what the account's key (JSON)
# must hold for google-auth, every value a string; the token endpoint is the key's token_uri.
GOOGLE_SCOPE = 'https://mail.google.com/'
SERVICE_ACCOUNT_TYPE = 'service_account'
SERVICE_ACCOUNT_FIELDS = ('type', 'client_email', 'private_key', 'token_uri')
# The OAuth2 hop (emailproxy, docs/oauth2-design.md): Postfix relays to it on loopback with AUTH PLAIN,
# the SASL password being the client secret (so no secret is in the hop's files); it logs in upstream
# with XOAUTH2 and fetches and renews the tokens. One listener per OAuth2 upstream, from HOP_FIRST_PORT.
HOP_ADDRESS = '127.0.0.1'
HOP_FIRST_PORT = 10587
HOP_LAST_PORT = 10686
# Parallel deliveries to a hop next-hop unless the route sets concurrency_limit: few logins (each costs
# the hop a key derivation), connections reused, under the providers' limits on concurrent sessions.
HOP_CONCURRENCY = 2
HOP_SERVICE = 'smarthost-oauth2-hop'
HOP_USER = 'smarthost-oauth2'
HOP_CONFIG_DIRECTORY = '/etc/smarthost-oauth2'
HOP_CONFIG = HOP_CONFIG_DIRECTORY + '/emailproxy.config'
HOP_UNIT = '/etc/systemd/system/%s.service' % HOP_SERVICE
HOP_HOME = '/opt/smarthost-oauth2'
HOP_VENV = HOP_HOME + '/venv'
# The venv's copy of the requirements it was installed from: a different text reinstalls it.
HOP_INSTALLED = HOP_VENV + '/smarthost-requirements.txt'
# The token cache: in the service's RuntimeDirectory, so it is gone at every stop and a new secret
# never meets a cache encrypted with the old one.
HOP_RUNTIME = 'smarthost-oauth2'
HOP_CACHE = '/run/%s/token-cache' % HOP_RUNTIME
HOP_MODE = '0600'
# The hop's secret files (a service account key, a client certificate's key) and its client certificates:
# HOP_CONFIG_DIRECTORY/<listener port><suffix>, HOP_MODE, the hop's user's, like its config file.
HOP_KEY_SUFFIXES = dict(service_account_key='.json', client_certificate='.crt', client_key='.key')
# The SASL password Postfix sends the hop for an upstream whose credential is a key (service account,
# certificate): emailproxy only encrypts its token cache with it. Derived from the key (so it changes,
# and the hop restarts, when the key does); stored only in the 0600 SASL map, never shown.
HOP_LOGIN_LABEL = b'smarthost.postfix oauth2 hop login\0'
# The guard (nftables, loaded by the hop's unit before it starts): only Postfix's smtp client (the mail
# owner) and root (the module's preflight) may connect to the hop's ports on loopback, and only the hop's
# user may answer on them (no other local user can listen there while the hop is down and collect the
# SASL passwords Postfix sends). The preflight proves it as HOP_PROBE_USER.
HOP_GUARD_TABLE = 'smarthost_oauth2_hop'
HOP_GUARD = HOP_CONFIG_DIRECTORY + '/guard.nft'
HOP_GUARD_MODE = '0644'
POSTFIX_USER = 'postfix'
HOP_PROBE_USER = 'nobody'
NFT = '/usr/sbin/nft'
# The hop's pinned requirements (with hashes), a file in the directory of the wheels on the host (the
# relay role copies both there from the controller); pip installs them offline (hosts may not reach PyPI).
HOP_REQUIREMENTS = 'oauth2-hop-requirements.txt'

CONFIG_DIRECTORY = '/etc/postfix'
# The relay's lookup tables and files in the config directory. A file the wanted state has no use for
# (state absent, no credentials, no rewriting, a route gone) is removed, source and compiled map of
# every type.
SASL_MAP = 'relay_sasl_passwd'
TLS_POLICY_MAP = 'relay_tls_policy'
GENERIC_MAP = 'relay_generic'
SENDER_ROUTES_MAP = 'relay_sender_routes'
TRANSPORT_MAP = 'relay_transport'
SENDER_CANONICAL_MAP = 'relay_sender_canonical'
# Regexp tables (plain files, no compiled map): the From header rewriting and the SMTP allowlists.
HEADER_CHECKS = 'relay_header_checks'
SENDER_ALLOWLIST = 'relay_sender_allowlist'
RECIPIENT_DOMAINS = 'relay_recipient_domains'
# A route's own files by kind (its SASL and TLS policy maps, its client certificate and key): the default
# route's are these, a named route's are ROUTE_FILE_PREFIX + route name + '_' + kind.
ROUTE_FILES = {'sasl': SASL_MAP, 'tls': TLS_POLICY_MAP, 'client.crt': 'relay_client.crt', 'client.key': 'relay_client.key'}
ROUTE_FILE_PREFIX = 'relay_route_'
# A named route's master.cf service and the prefix of its per-transport main.cf parameters.
ROUTE_TRANSPORT = 'relay-'
DEFAULT_TRANSPORT = 'smtp'
# Written by releases before the relay model (the preflight's record): removed where found.
LEGACY_FILES = ('relay_preflight.sha256',)
SECRET_MODE = '0600'
PUBLIC_MODE = '0644'
ALIASES_PATH = '/etc/aliases'
ALIASES_MARKER = 'root forward managed by smarthost.postfix.relay'
MASTER_CF_MARKER = 'routes managed by smarthost.postfix.relay (relay_routes): local changes are overwritten'
TLSPROXY_SERVICE = 'tlsproxy/unix'
# A change of these needs a restart of Postfix (the master process binds the listeners); any other
# change a reload.
LISTENER_PARAMETERS = ('inet_interfaces', 'inet_protocols')
MAIN_CF_HEADER = (
    '# Managed by smarthost.postfix (relay): local changes are overwritten.\n'
    '# Add parameters with {extra}. Credentials live in {sasl_map}, never here.\n'
)
# What SMTP clients are told when the allowlists refuse them (permanent: nothing is queued).
SENDER_REFUSED = '554 5.7.1 Sender address not allowed on this relay'
RECIPIENT_REFUSED = '554 5.7.1 Recipient domain not served by this relay'

# Networks no public host is in. mynetworks outside them, wider than WIDE_PREFIX, is an open relay
# for a large part of the Internet, so it needs allow_wide_mynetworks.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16',
    'fc00::/7', 'fe80::/10', '::1/128'))
WIDE_PREFIX = {4: 24, 6: 48}
# Domain names that are this host's own: a domain route for them would send local mail away.
LOCAL_NAMES = ('localhost', 'localhost.localdomain')

# main.cf parameters that the model does not write but that would open relaying or take routing away
# from it: refused in extra_parameters, with the variable to use instead. Every parameter the model
# writes (MAIN_CF below) is refused as well.
RELAY_CONTROLS = {
    'relay_domains': 'mynetworks',
    'mynetworks_style': 'mynetworks',
    'permit_mx_backup_networks': 'mynetworks',
    'smtpd_client_restrictions': 'mynetworks',
    'smtpd_authorized_xclient_hosts': 'mynetworks',
    'smtpd_upstream_proxy_protocol': 'mynetworks',
    'default_transport': 'upstreams',
    'relay_transport': 'upstreams',
    'sender_dependent_relayhost_maps': 'upstreams',
    'smtp_sender_dependent_authentication': 'upstreams',
}
# Any fallback_relay (smtp_, lmtp_, or the old fallback_relay) is the model's to set.
FALLBACK_PARAMETER = re.compile(r'(\A|_)fallback_relay\Z')

_LABEL = re.compile(r'\A(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z')
# Local parts the model writes into maps and /etc/aliases: a dot-atom of letters, digits and _%+=-.
# Stricter than RFC 5322 on purpose: '|', '/', ':' and quotes would make an alias a command or a file.
_LOCAL_PART = re.compile(r'\A[A-Za-z0-9_%+=-]+(?:\.[A-Za-z0-9_%+=-]+)*\Z')
_PARAMETER_NAME = re.compile(r'\A[A-Za-z][A-Za-z0-9_-]*\Z')
_PATH = re.compile(r'\A(?:/[A-Za-z0-9._+-]+)+\Z')
# What the hop's config file (an INI file, read without interpolation) may hold of the OAuth2 settings:
# field: its pattern, and what the error calls a value that does not match (checked in this order).
_OAUTH2_TEXT = {
    'client_id': (re.compile(r'\A[A-Za-z0-9][A-Za-z0-9._@-]{0,127}\Z'), 'a client id (letters, digits and ._@-)'),
    'tenant': (re.compile(r'\A[A-Za-z0-9][A-Za-z0-9.-]{0,127}\Z'), 'a tenant (its id, or a domain name)'),
    'token_url': (re.compile(r'\Ahttps://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~!$&()*+,;=:@%-]*)*\Z'),
                  'an https URL without query (the token endpoint)'),
    'scope': (re.compile(r'\A[A-Za-z0-9._~:/@-]+(?: [A-Za-z0-9._~:/@-]+)*\Z'), 'a scope (space-separated URLs or names)'),
}
_DIGITS = re.compile(r'\A[0-9]{1,5}\Z')
# A route's name: part of a master.cf service name, of file names and of per-transport parameter names.
_ROUTE_NAME = re.compile(r'\A[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?\Z')
# PEM as Postfix reads it: whole BEGIN/END blocks of base64 lines, nothing else (no headers, no text).
_PEM_BLOCK = re.compile(r'-----BEGIN ([A-Z0-9 ]+)-----\n(?:[A-Za-z0-9+/=]{1,76}\n)+-----END \1-----\n')
_PEM = re.compile(r'\A(?:%s)+\Z' % _PEM_BLOCK.pattern)
CERTIFICATE_LABEL = 'CERTIFICATE'
# Unencrypted keys only: Postfix cannot ask for a passphrase.
PRIVATE_KEY_LABELS = ('PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY')
_POSTFIX_HOST_VARIABLES = ('$myhostname', '$mydomain')
# Characters that mean something in a POSIX extended regular expression (Postfix regexp tables).
_ERE_SPECIAL = re.compile(r'([\\.^$|?*+()\[\]{}/])')
# A whole address in a header: what may stand before and after it, and a local part of any sender.
_HEADER_BEFORE = '(.*[<[:space:],:;])?'
_HEADER_AFTER = '([>[:space:],;(].*)?'
_ANY_LOCAL_PART = '[^<>@[:space:],:;"()]+'


# ---- The input ---------------------------------------------------------------------------------------

# An OAuth2 upstream's identity provider settings (auth oauth2), provider-neutral: the token endpoint
# (token_url, or a Microsoft tenant), the app (client_id, client_secret) and the scope.
OAUTH2_OPTIONS = dict(
    flow=dict(type='str', default=OAUTH2_FLOWS[0], choices=list(OAUTH2_FLOWS)),
    tenant=dict(type='str'),
    token_url=dict(type='str', no_log=False),
    client_id=dict(type='str'),
    client_secret=dict(type='str', no_log=True),
    scope=dict(type='str'),
    # Google: the service account key (its JSON text, or the same as a dict).
    service_account_key=dict(type='raw', no_log=True),
    # Microsoft certificate credentials (instead of client_secret): the certificate and its private key (PEM).
    client_certificate=dict(type='str'),
    client_key=dict(type='str', no_log=True),
)

# One upstream SMTP server as smtp_probe takes it; an entry of upstreams (UPSTREAM_OPTIONS) adds how it
# authenticates beyond a password.
PROBE_OPTIONS = dict(
    host=dict(type='str', required=True),
    port=dict(type='int', default=DEFAULT_PORT),
    mx_lookup=dict(type='bool', default=False),
    tls=dict(type='str', default=DEFAULT_TLS, choices=list(TLS_LEVELS)),
    implicit_tls=dict(type='bool', default=False),
    servername=dict(type='str'),
    username=dict(type='str'),
    password=dict(type='str', no_log=True),
)

# One upstream SMTP server: an entry of upstreams (of the default route or of a route).
UPSTREAM_OPTIONS = dict(
    PROBE_OPTIONS,
    auth=dict(type='str', choices=list(AUTH_METHODS)),
    oauth2=dict(type='dict', options=OAUTH2_OPTIONS),
)

# What Postfix keeps per transport, not per next-hop: a route's, and the default route's as top-level
# options of the same names.
ROUTE_SETTINGS = dict(
    sasl_mechanisms=dict(type='list', elements='str'),
    tls_client_cert=dict(type='str'),
    tls_client_key=dict(type='str', no_log=True),
    concurrency_limit=dict(type='int'),
    rate_delay=dict(type='int', default=0),
)

# One entry of routes.
ROUTE_OPTIONS = dict(
    ROUTE_SETTINGS,
    name=dict(type='str', required=True),
    senders=dict(type='list', elements='str', default=[]),
    domains=dict(type='list', elements='str', default=[]),
    upstreams=dict(type='list', elements='dict', required=True, options=UPSTREAM_OPTIONS),
    sender_address=dict(type='str'),
    keep_reply_to=dict(type='bool', default=False),
)

# The relay's input, as an AnsibleModule argument spec. The relay role passes its relay_* variables
# under these names; tests/unit check that the role's argument spec documents the same defaults.
OPTIONS = dict(
    ROUTE_SETTINGS,
    state=dict(type='str', default='present', choices=list(STATES)),
    upstreams=dict(type='list', elements='dict', default=[], options=UPSTREAM_OPTIONS),
    routes=dict(type='list', elements='dict', default=[], options=ROUTE_OPTIONS),
    mynetworks=dict(type='list', elements='str', default=list(LOCAL_MYNETWORKS)),
    allow_wide_mynetworks=dict(type='bool', default=False),
    inet_interfaces=dict(type='raw', default='loopback-only'),
    tls_ca_file=dict(type='str', default='/etc/ssl/certs/ca-certificates.crt'),
    allow_plaintext_auth=dict(type='bool', default=False),
    connect_timeout=dict(type='int', default=5),
    helo_timeout=dict(type='int', default=30),
    upstream_address_limit=dict(type='int', default=1),
    myhostname=dict(type='str'),
    myorigin=dict(type='str', default='$myhostname'),
    sender_address=dict(type='str'),
    sender_address_scope=dict(type='str', default='local', choices=list(SENDER_SCOPES)),
    keep_reply_to=dict(type='bool', default=False),
    sender_rewrite=dict(type='dict', default={}),
    sender_allowlist=dict(type='list', elements='str'),
    recipient_domains=dict(type='list', elements='str'),
    root_forward=dict(type='str'),
    tls_connection_reuse=dict(type='bool', default=True),
    extra_parameters=dict(type='dict', default={}),
    map_type=dict(type='str', default='hash', choices=list(MAP_TYPES)),
    session_cache_type=dict(type='str', default='btree', choices=list(SESSION_CACHE_TYPES)),
)


class InputError(Exception):
    """The input is not usable; errors holds one message per problem (never a secret)."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(InputError, self).__init__('Invalid relay input: ' + '; '.join(self.errors))


def _default(spec):
    default = spec.get('default')
    return list(default) if isinstance(default, list) else dict(default) if isinstance(default, dict) else default


def _values(raw, options):
    """raw (a dict) with every option of options, None and missing ones replaced by their default."""
    return dict((key, raw.get(key) if raw.get(key) is not None else _default(spec)) for key, spec in options.items())


def _is_ip(text):
    """An IPv4 or IPv6 address without a zone id (an interface name has no place in Postfix's files)."""
    if '%' in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_hostname(text):
    """An RFC 1123 host name (an IPv4 literal passes: its labels are digits)."""
    return 0 < len(text) <= 253 and all(_LABEL.match(label) for label in text.split('.'))


def nexthop(host, port, mx_lookup):
    """The Postfix next-hop of an upstream: the key of relayhost, the fallbacks and every map entry.

    [host]:port skips the MX lookup; host:port does it. An IPv6 literal is written [ipv6:addr]:port.
    """
    if ':' in host:
        return '[ipv6:%s]:%d' % (host, port)
    return ('%s:%d' if mx_lookup else '[%s]:%d') % (host, port)


def sni_name(host, tls, servername):
    """The name Postfix sends in TLS SNI to an upstream, or None when it sends none.

    Postfix sends SNI only when the TLS policy has servername=: the model writes the explicit servername,
    or servername=hostname (the upstream's host name) for tls verify and secure, never for an IP address
    (SNI carries DNS names only). The preflight's probe sends exactly this name, so that it cannot pass
    against a server that serves another certificate without SNI while Postfix then fails.
    """
    if tls == 'none':
        return None
    if servername:
        return servername
    if tls in VERIFYING_TLS and not _is_ip(host):
        return host
    return None


def postfix_network(network):
    """A mynetworks entry in Postfix notation: IPv6 as [addr]/len."""
    if network.version == 6:
        return '[%s]/%d' % (network.network_address, network.prefixlen)
    return network.with_prefixlen


def compatibility_level(mail_version):
    """Postfix 3.6 introduced level 3.6; older releases (EL8/EL9 ship 3.5) top out at 2.

    Without a compatibility_level, Postfix 3.x runs at level 0, where smtpd dies on every connection.
    """
    numbers = re.findall(r'\d+', mail_version or '')[:2]
    if len(numbers) == 2 and (int(numbers[0]), int(numbers[1])) < (3, 6):
        return '2'
    return '3.6'


def ere_literal(text):
    """text as a POSIX extended regular expression that matches exactly it (for Postfix regexp tables)."""
    return _ERE_SPECIAL.sub(r'\\\1', text)


def _address_pattern(key):
    """The regexp for a sender key: the address itself, or any address in the domain of '@domain'."""
    if key.startswith('@'):
        return _ANY_LOCAL_PART + ere_literal(key)
    return ere_literal(key)


def _domain_pattern(key):
    """The regexp for the domain part of an address: 'example.com' exactly, '.example.com' its subdomains."""
    if key.startswith('.'):
        return '@[^@]+' + ere_literal(key)
    return '@' + ere_literal(key)


def shown(text):
    """A name (never a secret) as it may appear in a message: control characters shown as '?'."""
    return CONTROL_CHARACTERS.sub('?', str(text))


class _Checker(object):
    """Reads fields of the input and collects one message per problem, named as the caller spells it."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.errors = []
        self.hop_ports = []
        self.allow_plaintext = False

    def hop_port(self, field):
        """The next listener of the OAuth2 hop, in the order of the input (the default route's first)."""
        port = HOP_FIRST_PORT + len(self.hop_ports)
        if port > HOP_LAST_PORT:
            self.fail(field, 'more than %d OAuth2 upstreams' % (HOP_LAST_PORT - HOP_FIRST_PORT + 1))
            return None
        self.hop_ports.append(port)
        return port

    def name(self, field):
        return self.prefix + field

    def fail(self, field, text):
        self.errors.append('%s: %s' % (self.name(field), text))

    def text(self, field, value, empty=False):
        """A string without control characters (the whole of it), or None after an error.

        The message never shows the value: it may be a password.
        """
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            self.fail(field, 'must be a string')
            return None
        bad = control_character(value)
        if bad:
            self.fail(field, 'must not contain a control character (%s)' % bad)
            return None
        if not value and not empty:
            self.fail(field, 'must not be empty')
            return None
        return value

    def integer(self, field, value, low, high, what):
        """An int, also given as a string of digits ("587"); never a bool."""
        if isinstance(value, str) and _DIGITS.match(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(field, '%s is not %s (%d-%d)' % (value if isinstance(value, (int, str)) else type(value).__name__,
                                                       what, low, high))
            return None
        return value

    def flag(self, field, value):
        if not isinstance(value, bool):
            self.fail(field, 'must be true or false')
            return False
        return value

    def choice(self, field, value, choices):
        if value not in choices:
            self.fail(field, "'%s' is not one of %s" % (value, ', '.join(choices)))
            return None
        return value

    def hostname(self, field, value, ip=False):
        text = self.text(field, value)
        if text is None:
            return None
        if is_hostname(text) or (ip and _is_ip(text)):
            return text
        self.fail(field, "'%s' is not a host name%s" % (text, ' or IP address' if ip else ''))
        return None

    def address(self, field, value, domain_only=False):
        """A plain mail address user@domain (or @domain): never a command, a file or an include."""
        text = self.text(field, value)
        if text is None:
            return None
        local, at, domain = text.rpartition('@')
        if at and is_hostname(domain) and not _is_ip(domain) and (_LOCAL_PART.match(local) or (domain_only and not local)):
            return text
        self.fail(field, "'%s' is not a mail address (%s)" % (text, 'user@domain or @domain' if domain_only else 'user@domain'))
        return None

    def domain(self, field, value):
        """A domain name (no address literal), or '.domain' for its subdomains."""
        text = self.text(field, value)
        if text is None:
            return None
        name = text[1:] if text.startswith('.') else text
        if is_hostname(name) and not _is_ip(name):
            return text.lower()
        self.fail(field, "'%s' is not a domain name (example.com, or .example.com for its subdomains)" % text)
        return None

    def strings(self, field, value, read):
        """A list whose entries read() checks (read(field, entry)); None entries are dropped after an error."""
        if not isinstance(value, list):
            self.fail(field, 'must be a list')
            return []
        return [item for item in (read('%s[%d]' % (field, index), entry) for index, entry in enumerate(value))
                if item is not None]

    def pem(self, field, value, labels, single):
        """PEM text of whole blocks with one of labels (one block if single); never shown in a message."""
        if not isinstance(value, str):
            self.fail(field, 'must be a string (PEM)')
            return None
        text = value.replace('\r\n', '\n')
        text = text if text.endswith('\n') else text + '\n'
        blocks = _PEM_BLOCK.findall(text)
        if not _PEM.match(text) or not blocks or any(label not in labels for label in blocks) or (single and len(blocks) > 1):
            self.fail(field, 'must be PEM: %s%s block%s and nothing else (no passphrase, no text around it)'
                      % ('one ' if single else '', ' or '.join(labels), '' if single else 's'))
            return None
        return text


class Upstream(object):
    """One upstream SMTP server, normalised: what Postfix and the preflight need of it.

    An OAuth2 upstream (auth oauth2) is reached through the hop: to Postfix it is the hop's listener
    (host HOP_ADDRESS, its own port, no TLS, AUTH PLAIN with the mailbox and the client secret), and
    remote holds the real upstream, which the hop logs in to with XOAUTH2.
    """

    remote = None
    oauth2 = None

    def __init__(self, field, host, port, mx_lookup, tls, implicit_tls, username, password, servername=None):
        self.field = field
        self.host = host
        self.port = port
        self.mx_lookup = mx_lookup
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.username = username
        self.password = password
        self.servername = servername
        self.nexthop = nexthop(host, port, mx_lookup)
        self.sni = sni_name(host, tls, servername)

    @classmethod
    def through_hop(cls, field, remote, hop_port, mailbox, oauth2):
        """An OAuth2 upstream: remote (an Upstream, without credentials) behind the hop's listener hop_port."""
        upstream = cls(field, HOP_ADDRESS, hop_port, False, 'none', False, mailbox, oauth2['login'])
        upstream.remote = remote
        upstream.oauth2 = oauth2
        return upstream

    @property
    def auth(self):
        """How the upstream authenticates: one of AUTH_METHODS."""
        if self.oauth2 is not None:
            return 'oauth2'
        return 'password' if self.username is not None else 'none'

    def tls_policy(self):
        """The TLS policy map value: the level, and servername= when Postfix is to send SNI."""
        if self.sni is None:
            return self.tls
        return '%s servername=%s' % (self.tls, self.servername or SNI_HOSTNAME)

    def probe_params(self):
        """The options smtp_probe (module_utils._smtp) takes for this upstream (the hop's listener for OAuth2)."""
        params = dict(host=self.host, port=self.port, mx_lookup=self.mx_lookup, tls=self.tls,
                      implicit_tls=self.implicit_tls, servername=self.servername, username=self.username,
                      password=self.password)
        if self.oauth2 is not None:
            # Clear text on loopback to the hop, as Postfix does; PLAIN is what the hop takes.
            params.update(allow_plaintext_auth=True, mechanisms=[HOP_MECHANISM])
        return params

    def hop_file(self, name):
        """The path of one of the hop's files of this upstream (HOP_KEY_SUFFIXES names them)."""
        return '%s/%d%s' % (HOP_CONFIG_DIRECTORY, self.port, HOP_KEY_SUFFIXES[name])

    def hop_files(self):
        """The hop's files of this upstream: (path, content, secret) for its key and certificate, if any."""
        return [(self.hop_file(name), content, name != 'client_certificate')
                for name, content in sorted(self.oauth2['files'].items())]

    def hop_sections(self):
        """The hop's config sections of this OAuth2 upstream: its listener and its mailbox (no secret)."""
        remote, oauth2 = self.remote, self.oauth2
        account = [('token_url', oauth2['token_url']), ('oauth2_scope', oauth2['scope']), ('oauth2_flow', oauth2['flow'])]
        if oauth2['flow'] == 'service_account':
            # emailproxy reads the key from the file client_secret names (client_id file).
            account += [('client_id', 'file'), ('client_secret', self.hop_file('service_account_key'))]
        else:
            account.append(('client_id', oauth2['client_id']))
            if oauth2['files']:
                account += [('jwt_certificate_path', self.hop_file('client_certificate')),
                            ('jwt_key_path', self.hop_file('client_key'))]
        return [
            ('SMTP-%d' % self.port, (('server_address', remote.host), ('server_port', str(remote.port)),
                                     ('server_starttls', 'False' if remote.implicit_tls else 'True'),
                                     ('local_address', HOP_ADDRESS))),
            (self.username, tuple(account)),
        ]


def _entry(check, field, raw, options, least):
    """One dict of a list (an upstream, a route) with every option (defaults filled in), or None if it is none."""
    if not isinstance(raw, dict):
        check.fail(field, 'must be a dict with at least %s' % least)
        return None
    unknown = sorted(set(raw) - set(options))
    if unknown:
        check.fail(field, 'unknown key(s) %s; known are %s' % (', '.join(map(str, unknown)), ', '.join(options)))
    return _values(raw, options)


def _upstream(check, field, raw, allow_plaintext):
    before = len(check.errors)
    values = _entry(check, field, raw, UPSTREAM_OPTIONS, 'host')
    if values is None:
        return None
    host = check.hostname(field + '.host', values['host'] if values['host'] is not None else '', ip=True)
    port = check.integer(field + '.port', values['port'], 1, 65535, 'a port')
    mx_lookup = check.flag(field + '.mx_lookup', values['mx_lookup'])
    tls = check.choice(field + '.tls', values['tls'], TLS_LEVELS)
    implicit_tls = check.flag(field + '.implicit_tls', values['implicit_tls'])
    if host and mx_lookup and _is_ip(host):
        check.fail(field, 'mx_lookup needs a domain name, not the address %s' % host)
    if implicit_tls and tls and tls not in ENCRYPTING_TLS:
        check.fail(field, 'implicit_tls needs tls encrypt, verify or secure, not %s' % tls)
    servername = _servername(check, field, values['servername'], tls)
    explicit = values['auth'] is not None
    auth = values['auth'] if explicit else 'oauth2' if values['oauth2'] is not None else 'password'
    auth = check.choice(field + '.auth', auth, AUTH_METHODS)
    if auth is None:
        return None
    if auth == 'oauth2':
        upstream = _oauth2_upstream(check, field, values, Upstream(field, host, port, mx_lookup, tls, implicit_tls,
                                                                   None, None, servername))
        return upstream if len(check.errors) == before else None
    if values['oauth2'] is not None:
        check.fail(field + '.oauth2', 'is for auth: oauth2 (the upstream has auth: %s)' % auth)
    if auth == 'none' and (values['username'] is not None or values['password'] is not None):
        check.fail(field, 'auth: none sends no credentials; remove username and password, or use auth: password')
    if explicit and auth == 'password' and values['username'] is None and values['password'] is None:
        check.fail(field, 'auth: password needs username and password')
    username, password = _credentials(check, field, values, tls, allow_plaintext)
    if len(check.errors) > before:
        return None
    return Upstream(field, host, port, mx_lookup, tls, implicit_tls, username, password, servername)


def _oauth2_upstream(check, field, values, remote):
    """An upstream with auth oauth2: its OAuth2 settings checked, and its listener on the hop taken."""
    where = field + '.oauth2'
    if values['password'] is not None:
        check.fail(field + '.password', 'an OAuth2 upstream has no password; the client secret is %s.client_secret' % where)
    if remote.mx_lookup:
        check.fail(field + '.mx_lookup', 'the OAuth2 hop connects to the host itself; set mx_lookup: false')
    if remote.servername is not None:
        check.fail(field + '.servername', 'the OAuth2 hop sends the host name in SNI and checks the certificate against it; '
                                          'leave servername unset')
    if remote.tls not in ENCRYPTING_TLS:
        check.fail(field + '.tls', 'an OAuth2 upstream needs TLS (the hop sends a bearer token): encrypt, verify or secure, '
                                   'not %s; the hop always verifies the certificate and host name' % remote.tls)
    if values['username'] is None:
        check.fail(field + '.username', 'is required with auth: oauth2 (the mailbox the app sends as)')
    mailbox = None if values['username'] is None else check.address(field + '.username', values['username'])
    raw = values['oauth2']
    if not isinstance(raw, dict):
        check.fail(where, 'is required with auth: oauth2 (a dict with client_id and client_secret or a certificate, and tenant '
                          'or token_url; or flow service_account with service_account_key)')
        return None
    oauth2 = _entry(check, where, raw, OAUTH2_OPTIONS, 'client_id')
    given = dict(oauth2)
    oauth2['flow'] = check.choice(where + '.flow', oauth2['flow'], OAUTH2_FLOWS)
    for name, (pattern, what) in _OAUTH2_TEXT.items():
        if oauth2[name] is None:
            continue
        text = check.text('%s.%s' % (where, name), oauth2[name])
        if text is not None and not pattern.match(text):
            check.fail('%s.%s' % (where, name), "'%s' is not %s" % (text, what))
            text = None
        oauth2[name] = text
    oauth2['login'] = None
    oauth2['files'] = {}
    if oauth2['flow'] == 'service_account':
        _service_account(check, where, given, oauth2)
    elif oauth2['flow'] is not None:
        _client_credentials(check, where, given, oauth2)
    port = check.hop_port(field)
    if None in (mailbox, port, oauth2['login'], oauth2['flow'], oauth2['token_url'], oauth2['scope']):
        return None
    return Upstream.through_hop(field, remote, port, mailbox, oauth2)


def hop_login(key):
    """The SASL password Postfix sends the hop for an upstream whose credential is a key (HOP_LOGIN_LABEL)."""
    digest = hashlib.sha256(HOP_LOGIN_LABEL + key.encode('utf-8')).digest()
    return base64.urlsafe_b64encode(digest).decode('ascii').rstrip('=')


def _client_credentials(check, where, given, oauth2):
    """The app's own token: a client secret (the SASL password) or a certificate and its key (files of the hop)."""
    if given['service_account_key'] is not None:
        check.fail(where + '.service_account_key', 'is for flow: service_account')
    if given['client_id'] is None:
        check.fail(where + '.client_id', 'is required (the application (client) id)')
    if (given['tenant'] is None) == (given['token_url'] is None):
        check.fail(where, 'set one of tenant (Microsoft identity platform) and token_url (any other token endpoint)')
    elif given['tenant'] is not None:
        oauth2['token_url'] = None if oauth2['tenant'] is None else MICROSOFT_TOKEN_URL % oauth2['tenant']
        oauth2['scope'] = oauth2['scope'] or (MICROSOFT_SCOPE if given['scope'] is None else None)
    elif given['scope'] is None:
        check.fail(where + '.scope', 'is required with token_url (Microsoft 365: %s)' % MICROSOFT_SCOPE)
    certificate = given['client_certificate'] is not None or given['client_key'] is not None
    secret = oauth2['client_secret']
    if certificate and secret is not None:
        check.fail(where, 'set client_secret, or client_certificate and client_key (certificate credentials), not both')
    elif certificate:
        for name in ('client_certificate', 'client_key'):
            if given[name] is None:
                check.fail('%s.%s' % (where, name), 'is required with %s (certificate credentials)'
                           % ('client_key' if name == 'client_certificate' else 'client_certificate'))
        cert = None if given['client_certificate'] is None else check.pem(
            where + '.client_certificate', given['client_certificate'], (CERTIFICATE_LABEL,), True)
        # emailproxy signs the client assertion with RS256: an RSA key (PKCS#8 or PKCS#1), unencrypted.
        key = None if given['client_key'] is None else check.pem(
            where + '.client_key', given['client_key'], ('PRIVATE KEY', 'RSA PRIVATE KEY'), True)
        if cert is not None and key is not None:
            oauth2['files'] = dict(client_certificate=cert, client_key=key)
            oauth2['login'] = hop_login(key)
    elif secret is None:
        check.fail(where + '.client_secret', 'is required (the hop sends it to the token endpoint; it is the SASL '
                                             'password Postfix gives the hop, stored only in the 0600 map), or '
                                             'client_certificate and client_key')
    else:
        secret = check.text(where + '.client_secret', secret)
        if secret is not None and secret != secret.strip(BLANKS):
            check.fail(where + '.client_secret', 'must not start or end with blanks (a map cannot hold them)')
            secret = None
        oauth2['client_secret'] = oauth2['login'] = secret


def _service_account(check, where, given, oauth2):
    """Google's service account: its key (a file of the hop) signs the token request for the mailbox."""
    for name in ('tenant', 'client_id', 'client_secret', 'client_certificate', 'client_key'):
        if given[name] is not None:
            check.fail('%s.%s' % (where, name), 'is not used with flow: service_account (the key names the service account)')
    if given['scope'] is None:
        oauth2['scope'] = GOOGLE_SCOPE
    key = _service_account_key(check, where + '.service_account_key', given['service_account_key'])
    if key is None:
        return
    # token_url (a lab's or a proxy's token endpoint) replaces the key's token_uri, which google-auth posts to.
    if given['token_url'] is not None:
        if oauth2['token_url'] is None:
            return
        key['token_uri'] = oauth2['token_url']
    oauth2['token_url'] = key['token_uri']
    text = json.dumps(key, indent=2, sort_keys=True) + '\n'
    oauth2['files'] = dict(service_account_key=text)
    oauth2['login'] = hop_login(text)


def _service_account_key(check, field, value):
    """A service account key (its JSON text or a dict) checked whole; a dict of strings, or None after an error.

    No message shows a value of the key but its type and client_email (neither is a secret).
    """
    what = 'a Google service account key: the JSON of the key file, or the same as a dict'
    if value is None:
        check.fail(field, 'is required with flow: service_account (%s)' % what)
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            check.fail(field, 'is not JSON (%s)' % what)
            return None
    if not isinstance(value, dict):
        check.fail(field, 'must be a JSON object (%s)' % what)
        return None
    before = len(check.errors)
    odd = sorted(shown(name) for name, item in value.items() if not isinstance(name, str) or not isinstance(item, str))
    if odd:
        check.fail(field, 'every value must be a string, not those of %s' % ', '.join(odd))
        return None
    missing = [name for name in SERVICE_ACCOUNT_FIELDS if name not in value]
    if missing:
        check.fail(field, 'lacks %s (a key file as the Google Cloud console makes it holds them)' % ', '.join(missing))
        return None
    for name in sorted(value):
        bad = control_character(name) or (name != 'private_key' and control_character(value[name]))
        if bad:
            check.fail('%s.%s' % (field, shown(name)), 'must not contain a control character (%s)' % bad)
    if value['type'] != SERVICE_ACCOUNT_TYPE:
        check.fail(field + '.type', "'%s' is not %s" % (shown(value['type']), SERVICE_ACCOUNT_TYPE))
    check.address(field + '.client_email', value['client_email'])
    check.pem(field + '.private_key', value['private_key'], ('PRIVATE KEY',), True)
    pattern, what = _OAUTH2_TEXT['token_url']
    if not pattern.match(value['token_uri']):
        check.fail(field + '.token_uri', "'%s' is not %s" % (shown(value['token_uri']), what))
    return dict(value) if len(check.errors) == before else None


def _servername(check, field, value, tls):
    """An explicit SNI name: a DNS name (SNI carries no address), and only where TLS is possible."""
    if value is None:
        return None
    name = check.hostname(field + '.servername', value)
    if name is not None and _is_ip(name):
        check.fail(field + '.servername', "'%s' is an IP address; SNI carries DNS names only" % name)
        return None
    if name is not None and name == SNI_HOSTNAME:
        check.fail(field + '.servername', "'%s' is Postfix's keyword for the host name; leave servername unset "
                                          "for the host name (the default with tls verify and secure)" % name)
        return None
    if name is not None and tls == 'none':
        check.fail(field + '.servername', 'needs TLS; the upstream has tls none')
        return None
    return name


def _credentials(check, field, values, tls, allow_plaintext):
    username, password = values['username'], values['password']
    if username is None and password is None:
        return None, None
    if username is None or password is None:
        check.fail(field, 'username and password go together; set both or neither')
        return None, None
    username = check.text(field + '.username', username)
    password = check.text(field + '.password', password)
    for name, value in (('username', username), ('password', password)):
        if value is not None and value != value.strip(BLANKS):
            check.fail('%s.%s' % (field, name), 'must not start or end with blanks (a map cannot hold them)')
    if username is not None and ':' in username:
        check.fail(field + '.username', "must not contain ':' (Postfix splits user:password at the first ':')")
    if tls == 'none' and not allow_plaintext:
        check.fail(field, 'credentials with tls: none would be sent in clear text; use tls: encrypt or stronger, '
                          'or set %s: true' % check.name('allow_plaintext_auth'))
    return username, password


def _upstream_list(check, field, raw, allow_plaintext, route_field=None):
    """An ordered list of upstreams: the first is the primary, the others its fallbacks."""
    if not isinstance(raw, list) or not raw:
        when = '' if route_field else ' when %s is present' % check.name('state')
        check.fail(field, 'at least one upstream is required' + when)
        return []
    upstreams = [_upstream(check, '%s[%d]' % (field, index), item, allow_plaintext) for index, item in enumerate(raw)]
    if None in upstreams:
        return []
    seen = {}
    for upstream in upstreams:
        if upstream.nexthop in seen:
            check.fail(upstream.field, '%s is the same next-hop as %s' % (upstream.nexthop, check.name(seen[upstream.nexthop])))
        seen.setdefault(upstream.nexthop, upstream.field)
    if len(set(upstream.implicit_tls for upstream in upstreams)) > 1:
        check.fail(field, 'implicit_tls (port 465) and STARTTLS upstreams cannot be mixed in one list of upstreams: '
                          'Postfix sets smtp_tls_wrappermode per transport, and a primary and its fallbacks share one; '
                          'make all of them implicit_tls or none, or give the others a route of their own (%s); '
                          'Postfix reaches an OAuth2 upstream through the hop without TLS, whatever its implicit_tls'
                   % check.name('routes'))
    return upstreams


class Route(object):
    """The default route (upstreams) or one entry of routes: its upstreams and its transport's settings.

    Postfix knows the default route as the smtp transport with relayhost and smtp_fallback_relay in
    main.cf; a named route is a master.cf service of its own (ROUTE_TRANSPORT + name).
    """

    # What load() sets where the input has it (a route without rewriting, filter, certificate or limits).
    sender_address = None
    keep_reply_to = False
    sasl_mechanisms = None
    tls_client_cert = None
    tls_client_key = None
    concurrency_limit = None
    rate_delay = 0

    def __init__(self, name=None, field=''):
        self.name = name
        self.field = field
        self.transport = DEFAULT_TRANSPORT if name is None else ROUTE_TRANSPORT + name
        own = [ROUTE_FILES[kind] if name is None else '%s%s_%s' % (ROUTE_FILE_PREFIX, name, kind) for kind in ROUTE_FILES]
        self.sasl_map, self.tls_map, self.cert_file, self.key_file = own
        self.upstreams = []
        self.senders = []
        self.domains = []

    def option(self, name):
        """The field of one of this route's options, as load() names it (the default route's are top-level)."""
        return name if self.name is None else '%s.%s' % (self.field, name)

    @property
    def label(self):
        return 'default route' if self.name is None else 'route %s' % self.name

    @property
    def implicit_tls(self):
        return bool(self.upstreams) and self.upstreams[0].implicit_tls

    @property
    def destination(self):
        """transport:nexthop of the primary: the value of this route's sender and domain map entries."""
        return '%s:%s' % (self.transport, self.upstreams[0].nexthop)

    def sasl_entries(self):
        """SASL password map: next-hop -> username:password, for upstreams with credentials.

        Postfix looks the map up by the next-hop it is trying, so a fallback finds its own credentials;
        a route's map holds only its own upstreams, so no password is ever sent to another route's.
        """
        return dict((u.nexthop, '%s:%s' % (u.username, u.password)) for u in self.upstreams if u.auth != 'none')

    def hop_upstreams(self):
        """The route's OAuth2 upstreams (reached through the hop)."""
        return [u for u in self.upstreams if u.auth == 'oauth2']

    def sasl_security_options(self, relay):
        """smtp_sasl_security_options: no plaintext mechanism without TLS, but to the hop on loopback."""
        return 'noanonymous' if relay.allow_plaintext_auth or self.hop_upstreams() else 'noanonymous, noplaintext'

    def tls_policy_entries(self):
        return dict((u.nexthop, u.tls_policy()) for u in self.upstreams)

    def security_level(self):
        """The transport's default TLS level (each next-hop has its own in the policy map)."""
        # The hop's listeners have their tls none in the policy map; the real OAuth2 upstream is the hop's.
        return 'encrypt' if all(u.tls in ENCRYPTING_TLS for u in self.upstreams if u.auth != 'oauth2') else 'may'

    def mechanism_filter(self):
        return ', '.join(self.sasl_mechanisms) if self.sasl_mechanisms else ''

    def probe_mechanisms(self):
        """The mechanisms the preflight may use for this route: its filter, else what Postfix's client prefers."""
        return list(self.sasl_mechanisms or DEFAULT_MECHANISMS)

    def concurrency(self):
        """The transport's destination concurrency: the route's limit, or HOP_CONCURRENCY for a route with the hop."""
        return self.concurrency_limit or (HOP_CONCURRENCY if self.hop_upstreams() else None)

    def qmgr_parameters(self):
        """The per-transport main.cf parameters of a named route (the queue manager reads no -o of master.cf)."""
        values = (('destination_concurrency_limit', self.concurrency() and str(self.concurrency())),
                  ('destination_rate_delay', self.rate_delay and '%ds' % self.rate_delay))
        return [('%s_%s' % (self.transport, name), value) for name, value in values if value]

    def service(self, relay):
        """This named route's master.cf service: an smtp transport whose -o overrides are all its own.

        Every setting a route may differ in is overridden, empty where the route has none, so that
        nothing of the default route's main.cf (its SASL map, fallbacks, filter, certificate) applies.
        """
        overrides = [
            ('syslog_name', 'postfix/$service_name'),
            ('smtp_fallback_relay', ','.join(u.nexthop for u in self.upstreams[1:])),
            ('smtp_sasl_auth_enable', 'yes' if self.sasl_entries() else 'no'),
            ('smtp_sasl_password_maps', relay.map_spec(self.sasl_map) if self.sasl_entries() else ''),
            ('smtp_sasl_mechanism_filter', ','.join(self.sasl_mechanisms or ())),
            ('smtp_tls_policy_maps', relay.map_spec(self.tls_map)),
            ('smtp_tls_security_level', self.security_level()),
            ('smtp_tls_wrappermode', 'yes' if self.implicit_tls else 'no'),
            ('smtp_tls_cert_file', relay.path(self.cert_file) if self.tls_client_cert else ''),
            ('smtp_tls_key_file', relay.path(self.key_file) if self.tls_client_cert else ''),
        ]
        if relay.hop_upstreams():
            # Plaintext mechanisms (to the hop on loopback) for the routes with the hop only; a -o value holds no blank.
            overrides.insert(5, ('smtp_sasl_security_options', self.sasl_security_options(relay).replace(', ', ',')))
        return '%-9s unix  -       -       n       -       -       smtp\n%s' % (
            self.transport, ''.join('  -o %s=%s\n' % item for item in overrides))


def _sender_keys(check, field, value):
    return check.strings(field, value, lambda name, entry: _folded(check.address(name, entry, domain_only=True)))


def _folded(text):
    """An address or domain as Postfix compares it (keys fold to lower case)."""
    return None if text is None else text.lower()


def _mechanisms(check, field, value):
    if value is None:
        return None
    names = check.strings(field, value, check.text)
    mechanisms = []
    for index, mechanism in enumerate(names):
        mechanism = mechanism.upper()
        if mechanism not in MECHANISMS:
            check.fail('%s[%d]' % (field, index), "'%s' is not one of %s (the mechanisms the preflight can check)"
                       % (mechanism, ', '.join(MECHANISMS)))
        elif mechanism not in mechanisms:
            mechanisms.append(mechanism)
    if not names and isinstance(value, list):
        check.fail(field, 'must name at least one mechanism; leave it unset for no filter')
    return mechanisms or None


def _route_settings(check, route, values):
    """The settings Postfix keeps per transport (ROUTE_SETTINGS), checked against the route's upstreams."""
    route.sasl_mechanisms = _mechanisms(check, route.option('sasl_mechanisms'), values['sasl_mechanisms'])
    if route.sasl_mechanisms and route.upstreams and not route.sasl_entries():
        check.fail(route.option('sasl_mechanisms'), 'no upstream of the %s has credentials: the filter would do nothing'
                   % route.label)
    cert, key = values['tls_client_cert'], values['tls_client_key']
    if (cert is None) != (key is None):
        check.fail(route.option('tls_client_cert'), '%s and %s go together; set both or neither'
                   % (check.name(route.option('tls_client_cert')), check.name(route.option('tls_client_key'))))
    elif cert is not None:
        route.tls_client_cert = check.pem(route.option('tls_client_cert'), cert, (CERTIFICATE_LABEL,), single=False)
        route.tls_client_key = check.pem(route.option('tls_client_key'), key, PRIVATE_KEY_LABELS, single=True)
        if route.upstreams and all(u.tls == 'none' for u in route.upstreams):
            check.fail(route.option('tls_client_cert'), 'a client certificate needs TLS; every upstream of the %s has tls none'
                       % route.label)
    if values['concurrency_limit'] is not None:
        route.concurrency_limit = check.integer(route.option('concurrency_limit'), values['concurrency_limit'], 1,
                                                MAX_CONCURRENCY, 'a number of connections')
    route.rate_delay = check.integer(route.option('rate_delay'), values['rate_delay'], 0, MAX_RATE_DELAY,
                                     'a number of seconds') or 0
    if route.hop_upstreams():
        _hop_route(check, route)


def _hop_route(check, route):
    """A route with an OAuth2 upstream: Postfix may use PLAIN without TLS (to the hop), but never elsewhere."""
    if route.sasl_mechanisms and HOP_MECHANISM not in route.sasl_mechanisms:
        check.fail(route.option('sasl_mechanisms'), 'must include %s: Postfix logs in to the OAuth2 hop with it'
                   % HOP_MECHANISM)
    if check.allow_plaintext:
        return
    for upstream in route.upstreams:
        if upstream.auth == 'password' and upstream.tls not in ENCRYPTING_TLS:
            check.fail(upstream.field + '.tls', 'with an OAuth2 upstream in the %s, Postfix may send plaintext '
                       'mechanisms without TLS (to the hop on loopback): this upstream\'s password needs tls encrypt or '
                       'stronger, not %s, or set %s: true' % (route.label, upstream.tls, check.name('allow_plaintext_auth')))


def _route(check, field, raw, allow_plaintext):
    before = len(check.errors)
    values = _entry(check, field, raw, ROUTE_OPTIONS, 'name and upstreams')
    if values is None:
        return None
    name = check.text(field + '.name', values['name'] if values['name'] is not None else '')
    if name is not None and not _ROUTE_NAME.match(name):
        check.fail(field + '.name', "'%s' is not a route name (1-32 lower-case letters, digits and inner '-')" % name)
        name = None
    route = Route(name or 'invalid', field)
    route.upstreams = _upstream_list(check, field + '.upstreams', values['upstreams'], allow_plaintext, route_field=field)
    route.senders = _sender_keys(check, field + '.senders', values['senders'])
    route.domains = check.strings(field + '.domains', values['domains'], check.domain)
    if isinstance(values['senders'], list) and isinstance(values['domains'], list) and not values['senders'] \
            and not values['domains']:
        check.fail(field, 'a route needs senders, domains or both: they choose the mail it carries')
    for index, domain in enumerate(route.domains):
        if domain.lstrip('.') in LOCAL_NAMES:
            check.fail('%s.domains[%d]' % (field, index), "'%s' is this host's own: a route would send local mail away"
                       % domain)
    if values['sender_address'] is not None:
        route.sender_address = _folded(check.address(field + '.sender_address', values['sender_address']))
        if not values['senders']:
            check.fail(field + '.sender_address', 'rewriting is decided by the sender: the route needs senders')
    route.keep_reply_to = check.flag(field + '.keep_reply_to', values['keep_reply_to'])
    if route.keep_reply_to and values['sender_address'] is None:
        check.fail(field + '.keep_reply_to', 'keeps the original sender when sender_address rewrites it; set sender_address')
    _route_settings(check, route, values)
    return route if len(check.errors) == before else None


def _route_list(check, value, allow_plaintext):
    if not isinstance(value, list):
        check.fail('routes', 'must be a list of routes')
        return []
    routes = [_route(check, 'routes[%d]' % index, item, allow_plaintext) for index, item in enumerate(value)]
    routes = [route for route in routes if route is not None]
    owners = {}
    for route in routes:
        for kind, keys in (('name', [route.name]), ('sender', route.senders), ('domain', route.domains)):
            for key in keys:
                other = owners.setdefault((kind, key), route)
                if other is not route:
                    check.fail(route.field, "%s '%s' is %s's too; each belongs to one route"
                               % (kind, key, check.name(other.field)))
    # The queue holds the rewritten sender, which must route as the route's own senders do.
    for route in routes:
        if route.sender_address:
            owner = owners.setdefault(('sender', route.sender_address), route)
            if owner is not route:
                check.fail(route.option('sender_address'), "'%s' belongs to %s: mail rewritten to it would take that "
                           "route" % (route.sender_address, check.name(owner.field)))
    return routes


def _network(check, field, value, allow_wide):
    text = check.text(field, value)
    if text is None:
        return None
    bare = text
    if text.startswith('['):
        match = re.match(r'\A\[([0-9A-Fa-f:.]+)\](/[0-9]{1,3})?\Z', text)
        if not match or ':' not in match.group(1):
            check.fail(field, "'%s' is not a valid CIDR (brackets are for IPv6 only)" % text)
            return None
        bare = match.group(1) + (match.group(2) or '')
    if '%' in bare:
        check.fail(field, "'%s' is not a valid CIDR (no zone ids)" % text)
        return None
    try:
        network = ipaddress.ip_network(bare, strict=False)
    except ValueError:
        check.fail(field, "'%s' is not a valid CIDR" % text)
        return None
    try:
        ipaddress.ip_network(bare, strict=True)
    except ValueError:
        # Postfix refuses host bits below the mask ("non-null host address bits").
        check.fail(field, "'%s' has host bits set; did you mean '%s'?" % (text, postfix_network(network)))
        return None
    private = any(network.version == net.version and network.subnet_of(net) for net in PRIVATE_NETWORKS)
    if not allow_wide and (network.prefixlen == 0 or (not private and network.prefixlen < WIDE_PREFIX[network.version])):
        check.fail(field, "'%s' lets %s relay mail through your upstream accounts (an open relay); list your client "
                          "networks, or set %s: true if that is what you want"
                   % (text, 'every host' if network.prefixlen == 0 else 'a public network wider than a /%d'
                      % WIDE_PREFIX[network.version], check.name('allow_wide_mynetworks')))
        return None
    return network


def _interfaces(check, value):
    if isinstance(value, str) and value in INTERFACE_KEYWORDS:
        return value
    if not isinstance(value, list) or not value:
        check.fail('inet_interfaces', "must be %s or a list of IP addresses" % ' or '.join("'%s'" % k for k in INTERFACE_KEYWORDS))
        return None
    addresses = []
    for index, address in enumerate(value):
        field = 'inet_interfaces[%d]' % index
        text = check.text(field, address)
        if text is not None and not _is_ip(text):
            check.fail(field, "'%s' is not an IP address (no zone ids)" % text)
        elif text is not None:
            addresses.append(text)
    return ', '.join(addresses)


def _extra_parameters(check, value):
    if not isinstance(value, dict):
        check.fail('extra_parameters', 'must be a dict of main.cf parameter names to values')
        return []
    owned = dict((parameter.name, parameter.variable) for parameter in MAIN_CF)
    parameters = []
    for name, raw in value.items():
        field = 'extra_parameters.%s' % shown(name)
        if not isinstance(name, str) or not _PARAMETER_NAME.match(name):
            check.fail(field, "'%s' is not a Postfix parameter name (letters, digits, '_' and '-')" % shown(name))
            continue
        if name in owned or name in RELAY_CONTROLS or FALLBACK_PARAMETER.search(name) or name.startswith(ROUTE_TRANSPORT):
            instead = owned[name] if name in owned else RELAY_CONTROLS.get(
                name, 'routes' if name.startswith(ROUTE_TRANSPORT) else 'upstreams')
            check.fail(field, 'is set by the relay itself (who may relay, where mail goes and how); %s'
                       % ('it cannot be changed' if instead is SET_BY_RELAY else 'use %s instead' % check.name(instead)))
            continue
        if isinstance(raw, bool):
            raw = 'yes' if raw else 'no'
        elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            raw = ', '.join(raw)
        text = check.text(field, raw, empty=True)
        if text is not None:
            parameters.append((name, text.strip(BLANKS)))
    return parameters


def _rewrite(check, value):
    if not isinstance(value, dict):
        check.fail('sender_rewrite', 'must be a dict of local address or @domain to address')
        return {}
    entries = {}
    for key, target in value.items():
        field = 'sender_rewrite[%s]' % shown(key)
        key = check.address(field + ' key', key, domain_only=True)
        target = check.address(field, target)
        if key and target:
            entries[key] = target
    return entries


def _covered(key, allowed, domain):
    """Whether an allowlist (allowed) lets key through: itself, its @domain, or (domains) a '.parent'."""
    if key in allowed:
        return True
    if not domain:
        return '@' + key.rpartition('@')[2] in allowed
    name = key.lstrip('.')
    return any(entry.startswith('.') and name.endswith(entry) for entry in allowed)


def _allowlists(check, relay, values):
    """The SMTP allowlists; every route's senders and domains must pass them, or the route could not be used."""
    relay.sender_allowlist = None if values['sender_allowlist'] is None else _sender_keys(
        check, 'sender_allowlist', values['sender_allowlist'])
    relay.recipient_domains = None if values['recipient_domains'] is None else check.strings(
        'recipient_domains', values['recipient_domains'], check.domain)
    for name, allowed, attribute, domain in (('sender_allowlist', relay.sender_allowlist, 'senders', False),
                                             ('recipient_domains', relay.recipient_domains, 'domains', True)):
        if values[name] is not None and not values[name]:
            check.fail(name, 'must list at least one entry; leave it unset to allow all')
        for route in relay.routes if allowed else ():
            for index, key in enumerate(getattr(route, attribute)):
                if not _covered(key, allowed, domain):
                    check.fail('%s.%s[%d]' % (route.field, attribute, index), "'%s' is not in %s: SMTP clients could not "
                               "use the route" % (key, check.name(name)))


def _global_rewriting(check, relay, values):
    relay.sender_address = None if values['sender_address'] is None else check.address('sender_address', values['sender_address'])
    relay.sender_address_scope = check.choice('sender_address_scope', values['sender_address_scope'], SENDER_SCOPES)
    relay.keep_reply_to = check.flag('keep_reply_to', values['keep_reply_to'])
    if relay.sender_address_scope == 'all' and relay.sender_address is None and values['sender_address'] is None:
        check.fail('sender_address_scope', 'all rewrites every sender to %s; set it' % check.name('sender_address'))
    if relay.keep_reply_to and relay.sender_address_scope != 'all':
        check.fail('keep_reply_to', 'keeps the original sender when %s: all rewrites it' % check.name('sender_address_scope'))
    if relay.rewrites_all() and relay.sender_address:
        target = relay.sender_address.lower()
        for route in relay.routes:
            if target in route.senders or target == route.sender_address:
                check.fail('sender_address', "'%s' belongs to %s: mail rewritten to it would take that route"
                           % (relay.sender_address, check.name(route.field)))
    relay.sender_rewrite = _rewrite(check, values['sender_rewrite'])


def _hop_mailboxes(check, relay):
    """The hop keeps one account per mailbox: an OAuth2 mailbox may appear in one upstream only."""
    owners = {}
    for upstream in relay.hop_upstreams():
        other = owners.setdefault(upstream.username.lower(), upstream)
        if other is not upstream:
            check.fail(upstream.field + '.username', "'%s' is the mailbox of %s too; the OAuth2 hop keeps one account "
                       "per mailbox" % (upstream.username, check.name(other.field)))


def load(params, prefix='', config_directory=CONFIG_DIRECTORY, aliases_path=ALIASES_PATH):
    """Check the whole input (OPTIONS names) and return the Relay, or raise InputError.

    prefix is put before every field name in messages: the relay role passes 'relay_'. With
    state absent only what the local-only configuration needs is checked. The paths are there for
    tests: Postfix's own are the defaults.
    """
    unknown = sorted(set(params) - set(OPTIONS))
    if unknown:
        raise InputError(['%s%s: not an option of the relay' % (prefix, name) for name in unknown])
    values = _values(params, OPTIONS)
    check = _Checker(prefix)
    relay = Relay()
    relay.state = check.choice('state', values['state'], STATES)
    relay.map_type = check.choice('map_type', values['map_type'], MAP_TYPES)
    relay.session_cache_type = check.choice('session_cache_type', values['session_cache_type'], SESSION_CACHE_TYPES)
    relay.myhostname = None if values['myhostname'] is None else check.hostname('myhostname', values['myhostname'])
    myorigin = values['myorigin']
    relay.myorigin = myorigin if myorigin in _POSTFIX_HOST_VARIABLES else check.hostname('myorigin', myorigin)
    relay.root_forward = None if values['root_forward'] is None else check.address('root_forward', values['root_forward'])
    for name, upper in (('connect_timeout', MAX_TIMEOUT), ('helo_timeout', MAX_TIMEOUT)):
        setattr(relay, name, check.integer(name, values[name], 1, upper, 'a number of seconds'))
    relay.upstream_address_limit = check.integer('upstream_address_limit', values['upstream_address_limit'],
                                                 1, MAX_ADDRESS_LIMIT, 'a number of addresses')
    ca_file = check.text('tls_ca_file', values['tls_ca_file'])
    if ca_file is not None and not _PATH.match(ca_file):
        check.fail('tls_ca_file', "'%s' is not an absolute path of letters, digits and ._+-/" % ca_file)
    relay.tls_ca_file = ca_file
    relay.allow_plaintext_auth = check.allow_plaintext = check.flag('allow_plaintext_auth', values['allow_plaintext_auth'])
    relay.tls_connection_reuse = check.flag('tls_connection_reuse', values['tls_connection_reuse'])
    relay.extra_parameters = _extra_parameters(check, values['extra_parameters'])
    relay.prefix = prefix
    relay.config_directory = config_directory
    relay.aliases_path = aliases_path
    relay.default_route = Route()
    if relay.state == 'present':
        relay.default_route.upstreams = _upstream_list(check, 'upstreams', values['upstreams'], relay.allow_plaintext_auth)
        _route_settings(check, relay.default_route, values)
        relay.routes = _route_list(check, values['routes'], relay.allow_plaintext_auth)
        allow_wide = check.flag('allow_wide_mynetworks', values['allow_wide_mynetworks'])
        if not isinstance(values['mynetworks'], list):
            check.fail('mynetworks', 'must be a list of CIDRs')
        else:
            relay.mynetworks = [_network(check, 'mynetworks[%d]' % index, item, allow_wide)
                                for index, item in enumerate(values['mynetworks'])]
        relay.inet_interfaces = _interfaces(check, values['inet_interfaces'])
        _global_rewriting(check, relay, values)
        _allowlists(check, relay, values)
        for route in relay.routes:
            for index, domain in enumerate(route.domains):
                if domain.lstrip('.') in (relay.myhostname, relay.myorigin):
                    check.fail('%s.domains[%d]' % (route.field, index), "'%s' is this host's own: a route would send "
                               "local mail away" % domain)
        _hop_mailboxes(check, relay)
    if check.errors:
        raise InputError(check.errors)
    return relay


# ---- The wanted state ------------------------------------------------------------------------------

class Host(object):
    """What the model needs to know of the host: Postfix's version and the host's FQDN."""

    def __init__(self, mail_version='', fqdn='localhost'):
        self.mail_version = mail_version
        self.fqdn = fqdn


class _Owned(object):
    """A file of the relay in the config directory: its name, whether it holds a secret (and so its mode)."""

    def __init__(self, name, secret, probe):
        self.name = name
        self.secret = secret
        self.mode = SECRET_MODE if secret else PUBLIC_MODE
        # Part of the upstream settings: a change is checked by the preflight before it goes live.
        self.probe = probe


class Table(_Owned):
    """A lookup table: the entries it must hold, or None when it must go."""

    def __init__(self, name, entries, secret=False, probe=False):
        super(Table, self).__init__(name, secret, probe)
        self.entries = entries


class File(_Owned):
    """A plain file (a regexp table, a certificate): its text, or None when it must go."""

    def __init__(self, name, content, secret=False, probe=False):
        super(File, self).__init__(name, secret, probe)
        self.content = content


class Parameter(object):
    """One main.cf parameter the relay writes.

    value(relay, host) is its value with state present (empty: not written, Postfix's default holds);
    local is its value in the local-only main.cf of state absent: SAME, a constant, or None (not written).
    variable names the input that decides it; extra_parameters cannot set it. probe marks the upstream
    settings, whose change the preflight checks before it goes live.
    """

    def __init__(self, name, variable, value, local=None, probe=False):
        self.name = name
        self.variable = variable
        self.value = value
        self.local = local
        self.probe = probe


SAME = object()
# The variable of a parameter that no input decides.
SET_BY_RELAY = None


def _smtpd_check(relay, kind, name, wanted):
    return '%s %s' % (kind, relay.map_spec(name, 'regexp')) if wanted else ''


# main.cf, parameter by parameter, in the order they are written.
MAIN_CF = (
    Parameter('compatibility_level', SET_BY_RELAY, lambda r, h: compatibility_level(h.mail_version), SAME),
    Parameter('myhostname', 'myhostname', lambda r, h: r.myhostname or h.fqdn, SAME),
    Parameter('myorigin', 'myorigin', lambda r, h: r.myorigin, SAME),
    Parameter('mydestination', 'myhostname', lambda r, h: '$myhostname, localhost.$mydomain, localhost', SAME),
    Parameter('alias_maps', 'map_type', lambda r, h: '%s:%s' % (r.map_type, r.aliases_path), SAME),
    Parameter('alias_database', 'map_type', lambda r, h: '%s:%s' % (r.map_type, r.aliases_path), SAME),
    Parameter('default_database_type', 'map_type', lambda r, h: r.map_type, SAME),
    Parameter('inet_interfaces', 'inet_interfaces', lambda r, h: r.inet_interfaces, 'loopback-only'),
    Parameter('mynetworks', 'mynetworks', lambda r, h: ', '.join(postfix_network(n) for n in r.mynetworks),
              ', '.join(LOCAL_MYNETWORKS)),
    # reject (554), not Postfix's compatibility default defer (454): an open-relay probe gets a permanent no.
    Parameter('smtpd_relay_restrictions', 'mynetworks', lambda r, h: 'permit_mynetworks, reject_unauth_destination', SAME),
    # The allowlists: permanent refusals at RCPT, so nothing is queued.
    Parameter('smtpd_sender_restrictions', 'sender_allowlist',
              lambda r, h: _smtpd_check(r, 'check_sender_access', SENDER_ALLOWLIST, r.sender_allowlist)),
    Parameter('smtpd_recipient_restrictions', 'recipient_domains', lambda r, h: 'permit_auth_destination, ' + _smtpd_check(
        r, 'check_recipient_access', RECIPIENT_DOMAINS, True) if r.recipient_domains else ''),
    Parameter('biff', SET_BY_RELAY, lambda r, h: 'no', SAME),
    Parameter('append_dot_mydomain', SET_BY_RELAY, lambda r, h: 'no', SAME),
    Parameter('relayhost', 'upstreams', lambda r, h: r.upstreams[0].nexthop, probe=True),
    Parameter('smtp_fallback_relay', 'upstreams', lambda r, h: ', '.join(u.nexthop for u in r.upstreams[1:]), probe=True),
    # Mail by sender and by recipient domain to the routes' transports; everything else to relayhost.
    Parameter('sender_dependent_default_transport_maps', 'routes',
              lambda r, h: r.map_spec(SENDER_ROUTES_MAP) if r.sender_route_entries() else ''),
    Parameter('transport_maps', 'routes', lambda r, h: r.map_spec(TRANSPORT_MAP) if r.transport_entries() else ''),
    Parameter('smtp_sasl_auth_enable', 'upstreams', lambda r, h: 'yes' if r.default_route.sasl_entries() else 'no', probe=True),
    Parameter('smtp_sasl_password_maps', 'upstreams',
              lambda r, h: r.map_spec(SASL_MAP) if r.default_route.sasl_entries() else '', probe=True),
    # Without TLS no plaintext mechanism (PLAIN/LOGIN) is used unless the user allowed it explicitly.
    Parameter('smtp_sasl_security_options', 'allow_plaintext_auth',
              lambda r, h: r.default_route.sasl_security_options(r), probe=True),
    # Postfix's default, written: an OAuth2 hop's 535 (no token) must defer, never bounce.
    Parameter('smtp_sasl_auth_soft_bounce', SET_BY_RELAY, lambda r, h: 'yes'),
    Parameter('smtp_sasl_tls_security_options', 'allow_plaintext_auth', lambda r, h: 'noanonymous', probe=True),
    Parameter('smtp_sasl_mechanism_filter', 'sasl_mechanisms', lambda r, h: r.default_route.mechanism_filter(), probe=True),
    Parameter('smtp_tls_security_level', 'upstreams', lambda r, h: r.default_route.security_level(), probe=True),
    Parameter('smtp_tls_wrappermode', 'upstreams', lambda r, h: 'yes' if r.upstreams[0].implicit_tls else '', probe=True),
    Parameter('smtp_tls_policy_maps', 'upstreams', lambda r, h: r.map_spec(TLS_POLICY_MAP), probe=True),
    Parameter('smtp_tls_CAfile', 'tls_ca_file', lambda r, h: r.tls_ca_file, probe=True),
    Parameter('smtp_tls_cert_file', 'tls_client_cert',
              lambda r, h: r.path(r.default_route.cert_file) if r.default_route.tls_client_cert else '', probe=True),
    Parameter('smtp_tls_key_file', 'tls_client_key',
              lambda r, h: r.path(r.default_route.key_file) if r.default_route.tls_client_cert else '', probe=True),
    Parameter('smtp_tls_loglevel', SET_BY_RELAY, lambda r, h: '1'),
    Parameter('smtp_tls_session_cache_database', 'session_cache_type',
              lambda r, h: '%s:${data_directory}/smtp_scache' % r.session_cache_type),
    Parameter('smtp_tls_connection_reuse', 'tls_connection_reuse', lambda r, h: 'yes' if r.tls_connection_reuse else 'no'),
    # A dead primary costs seconds, not Postfix's 30 s per attempt, before the fallback is tried; and
    # only upstream_address_limit of its addresses are tried, whatever its name resolves to.
    Parameter('smtp_connect_timeout', 'connect_timeout', lambda r, h: '%ds' % r.connect_timeout, probe=True),
    Parameter('smtp_helo_timeout', 'helo_timeout', lambda r, h: '%ds' % r.helo_timeout, probe=True),
    Parameter('smtp_mx_address_limit', 'upstream_address_limit', lambda r, h: str(r.upstream_address_limit)),
    # The default route's limits; a route's are its own transport's parameters (Route.qmgr_parameters).
    Parameter('smtp_destination_concurrency_limit', 'concurrency_limit',
              lambda r, h: str(r.default_route.concurrency() or '')),
    Parameter('smtp_destination_rate_delay', 'rate_delay',
              lambda r, h: '%ds' % r.default_route.rate_delay if r.default_route.rate_delay else ''),
    Parameter('smtp_generic_maps', 'sender_rewrite', lambda r, h: r.map_spec(GENERIC_MAP) if r.generic_entries(h) else ''),
    # Rewriting of any sender (a route's sender_address, or sender_address_scope all) when the message is
    # received: the envelope sender by canonical map, the From header by header_checks, which also move
    # the original From to Reply-To (keep_reply_to); Postfix then adds the From from the new envelope sender.
    Parameter('sender_canonical_maps', 'sender_address', lambda r, h: r.canonical_spec()),
    Parameter('sender_canonical_classes', 'sender_address', lambda r, h: 'envelope_sender' if r.canonical_spec() else ''),
    Parameter('header_checks', 'sender_address', lambda r, h: r.map_spec(HEADER_CHECKS, 'regexp') if r.header_rules() else ''),
    Parameter('always_add_missing_headers', 'keep_reply_to', lambda r, h: 'yes' if r.keeps_reply_to() else ''),
)


# The hop's config file: the settings of the whole hop (after its sections of listeners and mailboxes).
HOP_SETTINGS = (
    # The SASL password Postfix sends is the client secret: no secret in the hop's files.
    ('use_login_password_as_client_credentials_secret', 'True'),
    ('allow_catch_all_accounts', 'False'),
    ('delete_account_token_on_password_error', 'False'),
    ('encrypt_client_secret_on_first_use', 'False'),
)
HOP_CONFIG_HEADER = '# Managed by smarthost.postfix (relay): local changes are overwritten. No secret is kept here.\n'
# The hop's systemd unit (docs/oauth2-design.md: run as written on Debian 12 and 13, and with mount
# namespaces enforced in a container with CAP_SYS_ADMIN). {ca_file} is the relay's tls_ca_file: the
# hop verifies the token endpoint and the upstream against it.
HOP_UNIT_TEXT = '''# Managed by smarthost.postfix (relay): local changes are overwritten.
[Unit]
Description=smarthost.postfix OAuth2 hop (emailproxy): XOAUTH2 for Postfix's upstreams
After=network-online.target nftables.service
Wants=network-online.target
Before=postfix.service
# nftables.service flushes the whole ruleset when it (re)starts or stops: the hop goes with it, and its
# next start loads the guard again.
PartOf=nftables.service

[Service]
Type=simple
User={user}
Group={user}
# The guard ({guard}): loaded with full privileges (+) before every start, so the hop never listens
# unguarded; it stays after a stop (no other user may listen on the hop's ports while it is down).
ExecStartPre=+{nft} -f {guard}
ExecStart={venv}/bin/emailproxy --no-gui --config-file {config} --cache-store {cache}
# No ExecReload: on SIGHUP emailproxy reloads but cannot bind its ports again; a change restarts it.
# The token cache is in RuntimeDirectory: gone at every stop, so a new secret never meets a cache
# encrypted with the old one.
RuntimeDirectory={runtime}
RuntimeDirectoryMode=0700
UMask=0077
Environment=SSL_CERT_FILE={ca_file} REQUESTS_CA_BUNDLE={ca_file}
Restart=always
RestartSec=2s
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX

[Install]
WantedBy=multi-user.target
'''


# The guard's nftables table, whole: loading it replaces the one loaded before in one transaction (the
# empty declaration makes the delete succeed on the first load). Users by name, resolved when it loads.
HOP_GUARD_TEXT = '''# Managed by smarthost.postfix (relay): local changes are overwritten. Loaded by {service}.service.
table inet {table}
delete table inet {table}
table inet {table} {{
\tchain output {{
\t\ttype filter hook output priority filter; policy accept;
\t\toif "lo" tcp dport {{ {ports} }} meta skuid != {{ "{postfix}", 0 }} reject with tcp reset
\t\toif "lo" tcp sport {{ {ports} }} meta skuid != "{user}" reject with tcp reset
\t}}
}}
'''


class HopFile(object):
    """A file of the hop: its path, content, mode, whether the hop's user owns it (else root), and whether
    it holds a secret (a diff then never shows its content)."""

    def __init__(self, path, content, mode, hop_owned, secret):
        self.path = path
        self.content = content
        self.mode = mode
        self.hop_owned = hop_owned
        self.secret = secret


class Hop(object):
    """The OAuth2 hop a relay with OAuth2 upstreams wants: its files (config, guard, keys), its unit, its listeners."""

    def __init__(self, upstreams, ca_file):
        self.upstreams = upstreams
        self.nexthops = [upstream.nexthop for upstream in upstreams]
        self.ports = [upstream.port for upstream in upstreams]
        sections = [section for upstream in upstreams for section in upstream.hop_sections()]
        sections.append(('emailproxy', HOP_SETTINGS))
        self.config = HOP_CONFIG_HEADER + '\n'.join(
            '[%s]\n%s' % (name, ''.join('%s = %s\n' % item for item in items)) for name, items in sections)
        self.guard = HOP_GUARD_TEXT.format(service=HOP_SERVICE, table=HOP_GUARD_TABLE, postfix=POSTFIX_USER, user=HOP_USER,
                                           ports=', '.join(map(str, self.ports)))
        self.unit = HOP_UNIT_TEXT.format(user=HOP_USER, venv=HOP_VENV, config=HOP_CONFIG, cache=HOP_CACHE,
                                         runtime=HOP_RUNTIME, ca_file=ca_file, nft=NFT, guard=HOP_GUARD)
        self.files = [HopFile(HOP_CONFIG, self.config, HOP_MODE, True, False),
                      HopFile(HOP_GUARD, self.guard, HOP_GUARD_MODE, False, False)]
        self.files += [HopFile(path, content, HOP_MODE, True, secret)
                       for upstream in upstreams for path, content, secret in upstream.hop_files()]
        # The SASL passwords of the keys' logins (derived, so not in the input): the module masks them too.
        self.logins = [upstream.password for upstream in upstreams if upstream.oauth2['files']]


class Wanted(object):
    """The Postfix state a Relay wants on a host."""

    hop = None                                    # the Hop, or None: no OAuth2 upstream (the hop is removed)

    def __init__(self, main_cf, parameters, tables, files, master_cf_enable, master_cf_block, root_forward, routes):
        self.main_cf = main_cf                    # the whole text
        self.parameters = parameters              # dict name -> value, as written
        self.tables = tables                      # list of Table (entries None: remove)
        self.files = files                        # list of File (content None: remove)
        self.master_cf_enable = master_cf_enable  # NAME/TYPE services
        self.master_cf_block = master_cf_block    # the routes' services (between MASTER_CF_MARKER lines), '' for none
        self.root_forward = root_forward          # address, or None: no managed entry
        self.routes = routes                      # the routes the preflight probes: the default first

    def written_tables(self):
        """The tables to write (the others are to be removed), in the order of tables."""
        return [table for table in self.tables if table.entries is not None]

    def removable(self, names, map_type):
        """Those of names (files in the config directory) that are the relay's and not wanted."""
        suffixes = ('',) + tuple(MAP_SUFFIXES.values())
        keep = set(table.name + suffix for table in self.written_tables() for suffix in ('', MAP_SUFFIXES[map_type]))
        keep.update(item.name for item in self.files if item.content is not None)
        owned = set(table.name + suffix for table in self.tables for suffix in suffixes)
        owned.update(item.name for item in self.files)
        owned.update(LEGACY_FILES)
        kinds, endings = '|'.join(map(re.escape, ROUTE_FILES)), '|'.join(map(re.escape, suffixes))
        routes = re.compile(r'\A%s[a-z0-9-]+_(%s)(%s)\Z' % (re.escape(ROUTE_FILE_PREFIX), kinds, endings))
        return sorted(name for name in names if (name in owned or routes.match(name)) and name not in keep)

    def probe_parameters(self, live):
        """Names of the upstream settings in main.cf whose value differs from the live main.cf's."""
        return [parameter.name for parameter in MAIN_CF
                if parameter.probe and self.parameters.get(parameter.name, '') != live.get(parameter.name, '')]


class Relay(object):
    """The checked input (attributes named as OPTIONS); wanted() computes the Postfix state."""

    config_directory = CONFIG_DIRECTORY
    aliases_path = ALIASES_PATH
    default_route = Route()
    routes = ()
    mynetworks = ()
    inet_interfaces = None
    sender_address = None
    sender_address_scope = 'local'
    keep_reply_to = False
    sender_rewrite = None
    sender_allowlist = None
    recipient_domains = None

    @property
    def upstreams(self):
        """The default route's upstreams: relayhost and smtp_fallback_relay."""
        return self.default_route.upstreams

    def all_routes(self):
        return [self.default_route] + list(self.routes)

    def hop_upstreams(self):
        """Every OAuth2 upstream, the default route's first: each is one listener of the hop."""
        return [upstream for route in self.all_routes() for upstream in route.hop_upstreams()]

    def path(self, name):
        return '%s/%s' % (self.config_directory, name)

    def map_spec(self, name, map_type=None):
        return '%s:%s' % (map_type or self.map_type, self.path(name))

    def sasl_entries(self):
        return self.default_route.sasl_entries()

    def tls_policy_entries(self):
        return self.default_route.tls_policy_entries()

    def local_domains(self, host):
        names = [self.myhostname or host.fqdn, self.myorigin, 'localhost', 'localhost.localdomain']
        return [name for index, name in enumerate(names) if not name.startswith('$') and name not in names[:index]]

    def generic_entries(self, host):
        """smtp_generic_maps: sender_address catches every address of the local domains; sender_rewrite wins.

        With sender_address_scope all, sender_address rewrites every sender when the message is received
        (sender_canonical_maps), the local domains' included, so it needs no generic entries.
        """
        entries = {}
        if self.sender_address and not self.rewrites_all():
            entries.update(('@%s' % domain, self.sender_address) for domain in self.local_domains(host))
        entries.update(self.sender_rewrite or {})
        return entries

    def rewrites_all(self):
        return self.sender_address_scope == 'all' and bool(self.sender_address)

    def sender_route_entries(self):
        """sender_dependent_default_transport_maps: each route's senders, and its rewritten address, to its transport.

        The queue holds the sender as rewritten on receipt, so a route's sender_address routes like its
        senders; the global address (sender_address_scope all) stays with the default route (DUNNO) even
        where its domain is a route's.
        """
        entries = {}
        for route in self.routes:
            for key in route.senders + ([route.sender_address] if route.sender_address else []):
                entries[key] = route.destination
        if self.rewrites_all() and '@' + self.sender_address.lower().rpartition('@')[2] in entries:
            entries[self.sender_address.lower()] = 'DUNNO'
        return entries

    def transport_entries(self):
        """transport_maps: each route's recipient domains ('.domain' for subdomains) to its transport."""
        return dict((domain, route.destination) for route in self.routes for domain in route.domains)

    def canonical_entries(self):
        """sender_canonical_maps (hash): a route's senders to its sender_address; with a global rewrite,
        the senders of the routes that do not rewrite stay as they are (an entry that maps to itself)."""
        entries = {}
        for route in self.routes:
            if route.sender_address or self.rewrites_all():
                entries.update((key, route.sender_address or key) for key in route.senders)
        return entries

    def canonical_spec(self):
        specs = [self.map_spec(SENDER_CANONICAL_MAP)] if self.canonical_entries() else []
        if self.rewrites_all():
            specs.append('static:%s' % self.sender_address)
        return ', '.join(specs)

    def header_rules(self):
        """The lines of the header_checks regexp table: the first that matches a From header acts.

        A route's rule matches a From header that holds one of its senders; the global rule any other.
        REPLACE From: rewrites it; with keep_reply_to the From header becomes Reply-To instead, and
        Postfix adds a From from the envelope sender, which the canonical map rewrote.
        """
        rules = []
        for route in self.routes:
            if not route.sender_address and not self.rewrites_all():
                continue
            for key in route.senders:
                pattern = '/^From:(%s%s%s)$/' % (_HEADER_BEFORE, _address_pattern(key), _HEADER_AFTER)
                action = _from_action(route.sender_address, route.keep_reply_to) if route.sender_address else 'DUNNO'
                rules.append('%s %s' % (pattern, action))
        if self.rewrites_all():
            rules.append('/^From:(.*)$/ %s' % _from_action(self.sender_address, self.keep_reply_to))
        return rules

    def keeps_reply_to(self):
        """Whether a From header may become Reply-To (and Postfix must add the From that replaces it)."""
        global_keep = self.rewrites_all() and self.keep_reply_to
        return bool(global_keep) or any(route.keep_reply_to for route in self.routes)

    def sender_allowlist_rules(self):
        rules = ['/^%s$/ OK' % ere_literal(key) if not key.startswith('@') else '/%s$/ OK' % ere_literal(key)
                 for key in self.sender_allowlist]
        return rules + ['/./ %s' % SENDER_REFUSED]

    def recipient_domain_rules(self):
        return ['/%s$/ OK' % _domain_pattern(domain) for domain in self.recipient_domains] + ['/./ %s' % RECIPIENT_REFUSED]

    def master_cf_services(self):
        """The routes' master.cf services: the body of the block between the MASTER_CF_MARKER lines."""
        return ''.join(route.service(self) for route in self.routes)

    def tables(self, host, present):
        """Every lookup table the relay may own, with the entries it wants now (None: remove)."""

        def entries(value):
            return (value or None) if present else None

        tables = [
            Table(SASL_MAP, entries(self.default_route.sasl_entries()), secret=True, probe=True),
            Table(TLS_POLICY_MAP, self.default_route.tls_policy_entries() if present else None, probe=True),
            Table(GENERIC_MAP, entries(self.generic_entries(host))),
            Table(SENDER_ROUTES_MAP, entries(self.sender_route_entries())),
            Table(TRANSPORT_MAP, entries(self.transport_entries())),
            Table(SENDER_CANONICAL_MAP, entries(self.canonical_entries())),
        ]
        for route in self.routes if present else ():
            tables.append(Table(route.sasl_map, route.sasl_entries() or None, secret=True, probe=True))
            tables.append(Table(route.tls_map, route.tls_policy_entries(), probe=True))
        return tables

    def files(self, present):
        """Every plain file the relay may own: regexp tables and client certificates (None: remove)."""

        def text(lines):
            return ''.join(line + '\n' for line in lines) if present and lines else None

        files = [
            File(HEADER_CHECKS, text(self.header_rules())),
            File(SENDER_ALLOWLIST, text(self.sender_allowlist_rules() if self.sender_allowlist else [])),
            File(RECIPIENT_DOMAINS, text(self.recipient_domain_rules() if self.recipient_domains else [])),
        ]
        for route in self.all_routes() if present else [self.default_route]:
            files.append(File(route.cert_file, route.tls_client_cert if present else None, secret=True, probe=True))
            files.append(File(route.key_file, route.tls_client_key if present else None, secret=True, probe=True))
        return files

    def wanted(self, host):
        present = self.state == 'present'
        parameters = []
        for parameter in MAIN_CF:
            if present:
                value = parameter.value(self, host)
            elif parameter.local is SAME:
                value = parameter.value(self, host)
            else:
                value = parameter.local
            if value:
                parameters.append((parameter.name, value))
        if present:
            for route in self.routes:
                parameters.extend(route.qmgr_parameters())
            parameters.extend(self.extra_parameters)
        header = MAIN_CF_HEADER.format(extra=self.prefix + 'extra_parameters', sasl_map=self.path(SASL_MAP))
        main_cf = header + ''.join('%s = %s\n' % item for item in parameters)
        services = [TLSPROXY_SERVICE] if present and self.tls_connection_reuse else []
        wanted = Wanted(main_cf, dict(parameters), self.tables(host, present), self.files(present), services,
                        self.master_cf_services() if present else '', self.root_forward if present else None,
                        self.all_routes() if present else [])
        if present and self.hop_upstreams():
            wanted.hop = Hop(self.hop_upstreams(), self.tls_ca_file)
        return wanted


def _from_action(address, keep_reply_to):
    """The header_checks action for a From header that is to become address."""
    return 'REPLACE Reply-To:$1' if keep_reply_to else 'REPLACE From: %s' % address


# ---- the relay_config module's options -------------------------------------------------------------------

# The options whose default is the host's OS entry of os_variables (then the model's default).
OS_OPTIONS = ('tls_ca_file', 'map_type', 'session_cache_type')
OS_VARIABLES = OS_OPTIONS + ('packages', 'map_type_packages', 'hop_packages')
# How the module runs, beside the relay's input.
RUN_OPTIONS = dict(
    preflight=dict(type='bool', default=True),
    service=dict(type='bool', default=True),
)
# How the module reaches the host and its caller: set by the relay role itself. Each other option is also a
# variable of the role, named by variables_prefix and the option (relay_upstreams), which the action takes.
HOST_OPTIONS = dict(
    os_variables=dict(type='dict', default={}),
    packages=dict(type='list', elements='str', default=[]),
    map_type_packages=dict(type='dict', default={}),
    config_directory=dict(type='path', default=CONFIG_DIRECTORY),
    aliases_file=dict(type='path', default=ALIASES_PATH),
    oauth2_wheels=dict(type='path'),
    oauth2_wheels_from=dict(type='path'),
    variables_prefix=dict(type='str'),
    field_prefix=dict(type='str', default=''),
)


def module_argument_spec():
    """The relay_config module's argument spec: the relay's input, how it runs, how it reaches the host."""
    spec = dict(OPTIONS, **RUN_OPTIONS)
    spec.update((name, dict(OPTIONS[name], default=None)) for name in OS_OPTIONS)
    spec.update(HOST_OPTIONS)
    return spec


def variable_options():
    """The options that the action takes from the play's variables (variables_prefix + name)."""
    return [name for name in module_argument_spec() if name not in HOST_OPTIONS]
