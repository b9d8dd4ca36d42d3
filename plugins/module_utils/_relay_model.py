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
  master.cf services to enable, the lookup tables (entries, secret or not, mode) and the root alias.

The relay_config module reads the live state, compares and applies; unit tests exercise every rule
here directly. Private to the collection (leading underscore): no compatibility promise to others.
"""

from __future__ import annotations

import ipaddress
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
MAP_TYPES = tuple(sorted(MAP_SUFFIXES))
SESSION_CACHE_TYPES = ('btree', 'lmdb')
INTERFACE_KEYWORDS = ('all', 'loopback-only')
LOCAL_MYNETWORKS = ('127.0.0.0/8', '[::1]/128')
MAX_TIMEOUT = 300
MAX_ADDRESS_LIMIT = 10

CONFIG_DIRECTORY = '/etc/postfix'
# The relay's lookup tables in the config directory. A table the wanted state has no use for
# (state absent, no credentials, no rewriting) is removed, source and compiled map of every type.
SASL_MAP = 'relay_sasl_passwd'
TLS_POLICY_MAP = 'relay_tls_policy'
GENERIC_MAP = 'relay_generic'
# Written by releases before the relay model (the preflight's record): removed where found.
LEGACY_FILES = ('relay_preflight.sha256',)
SECRET_MODE = '0600'
PUBLIC_MODE = '0644'
ALIASES_PATH = '/etc/aliases'
ALIASES_MARKER = 'root forward managed by smarthost.postfix.relay'
TLSPROXY_SERVICE = 'tlsproxy/unix'
# A change of these needs a restart of Postfix (the master process binds the listeners); any other
# change a reload.
LISTENER_PARAMETERS = ('inet_interfaces', 'inet_protocols')
MAIN_CF_HEADER = (
    '# Managed by smarthost.postfix (relay): local changes are overwritten.\n'
    '# Add parameters with {extra}. Credentials live in {sasl_map}, never here.\n'
)

# Networks no public host is in. mynetworks outside them, wider than WIDE_PREFIX, is an open relay
# for a large part of the Internet, so it needs allow_wide_mynetworks.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(net) for net in (
    '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16',
    'fc00::/7', 'fe80::/10', '::1/128'))
WIDE_PREFIX = {4: 24, 6: 48}

# main.cf parameters that the model does not write but that would open relaying or take routing away
# from it: refused in extra_parameters, with the variable to use instead. Every parameter the model
# writes (MAIN_CF below) is refused as well.
RELAY_CONTROLS = {
    'relay_domains': 'mynetworks',
    'mynetworks_style': 'mynetworks',
    'permit_mx_backup_networks': 'mynetworks',
    'smtpd_recipient_restrictions': 'mynetworks',
    'smtpd_client_restrictions': 'mynetworks',
    'smtpd_authorized_xclient_hosts': 'mynetworks',
    'smtpd_upstream_proxy_protocol': 'mynetworks',
    'transport_maps': 'upstreams',
    'default_transport': 'upstreams',
    'relay_transport': 'upstreams',
    'sender_dependent_relayhost_maps': 'upstreams',
    'sender_dependent_default_transport_maps': 'upstreams',
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
_DIGITS = re.compile(r'\A[0-9]{1,5}\Z')
_POSTFIX_HOST_VARIABLES = ('$myhostname', '$mydomain')


# ---- The input ---------------------------------------------------------------------------------------

# One upstream SMTP server: an entry of upstreams. smtp_probe takes the same options.
UPSTREAM_OPTIONS = dict(
    host=dict(type='str', required=True),
    port=dict(type='int', default=DEFAULT_PORT),
    mx_lookup=dict(type='bool', default=False),
    tls=dict(type='str', default=DEFAULT_TLS, choices=list(TLS_LEVELS)),
    implicit_tls=dict(type='bool', default=False),
    username=dict(type='str'),
    password=dict(type='str', no_log=True),
)

# The relay's input, as an AnsibleModule argument spec. The relay role passes its relay_* variables
# under these names; tests/unit check that the role's argument spec documents the same defaults.
OPTIONS = dict(
    state=dict(type='str', default='present', choices=list(STATES)),
    upstreams=dict(type='list', elements='dict', default=[], options=UPSTREAM_OPTIONS),
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
    sender_rewrite=dict(type='dict', default={}),
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


class _Checker(object):
    """Reads fields of the input and collects one message per problem, named as the caller spells it."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.errors = []

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
        if at and is_hostname(domain) and (_LOCAL_PART.match(local) or (domain_only and not local)):
            return text
        self.fail(field, "'%s' is not a mail address (%s)" % (text, 'user@domain or @domain' if domain_only else 'user@domain'))
        return None


class Upstream(object):
    """One upstream SMTP server, normalised: what Postfix and the preflight need of it."""

    def __init__(self, field, host, port, mx_lookup, tls, implicit_tls, username, password):
        self.field = field
        self.host = host
        self.port = port
        self.mx_lookup = mx_lookup
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.username = username
        self.password = password
        self.nexthop = nexthop(host, port, mx_lookup)

    @property
    def auth(self):
        """How the upstream authenticates: 'password' or 'none'."""
        return 'password' if self.username is not None else 'none'

    def probe_params(self):
        """The options smtp_probe (module_utils._smtp) takes for this upstream."""
        return dict(host=self.host, port=self.port, mx_lookup=self.mx_lookup, tls=self.tls,
                    implicit_tls=self.implicit_tls, username=self.username, password=self.password)


def _upstream(check, field, raw, allow_plaintext):
    if not isinstance(raw, dict):
        check.fail(field, 'must be a dict with at least host')
        return None
    unknown = sorted(set(raw) - set(UPSTREAM_OPTIONS))
    if unknown:
        check.fail(field, 'unknown key(s) %s; known are %s' % (', '.join(map(str, unknown)), ', '.join(UPSTREAM_OPTIONS)))
    values = dict((key, raw.get(key) if raw.get(key) is not None else _default(spec)) for key, spec in UPSTREAM_OPTIONS.items())
    before = len(check.errors)
    host = check.hostname(field + '.host', values['host'] if values['host'] is not None else '', ip=True)
    port = check.integer(field + '.port', values['port'], 1, 65535, 'a port')
    mx_lookup = check.flag(field + '.mx_lookup', values['mx_lookup'])
    tls = check.choice(field + '.tls', values['tls'], TLS_LEVELS)
    implicit_tls = check.flag(field + '.implicit_tls', values['implicit_tls'])
    if host and mx_lookup and _is_ip(host):
        check.fail(field, 'mx_lookup needs a domain name, not the address %s' % host)
    if implicit_tls and tls and tls not in ENCRYPTING_TLS:
        check.fail(field, 'implicit_tls needs tls encrypt, verify or secure, not %s' % tls)
    username, password = _credentials(check, field, values, tls, allow_plaintext)
    if len(check.errors) > before:
        return None
    return Upstream(field, host, port, mx_lookup, tls, implicit_tls, username, password)


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


def _upstream_list(check, field, raw, allow_plaintext):
    """An ordered list of upstreams: the first is the primary, the others its fallbacks."""
    if not isinstance(raw, list) or not raw:
        check.fail(field, 'at least one upstream is required when %s is present' % check.name('state'))
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
                          'make all of them implicit_tls or none')
    return upstreams


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
        if name in owned or name in RELAY_CONTROLS or FALLBACK_PARAMETER.search(name):
            instead = owned[name] if name in owned else RELAY_CONTROLS.get(name, 'upstreams')
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


def shown(text):
    """A name (never a secret) as it may appear in a message: control characters shown as '?'."""
    return CONTROL_CHARACTERS.sub('?', str(text))


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


def load(params, prefix='', config_directory=CONFIG_DIRECTORY, aliases_path=ALIASES_PATH):
    """Check the whole input (OPTIONS names) and return the Relay, or raise InputError.

    prefix is put before every field name in messages: the relay role passes 'relay_'. With
    state absent only what the local-only configuration needs is checked. The paths are there for
    tests: Postfix's own are the defaults.
    """
    unknown = sorted(set(params) - set(OPTIONS))
    if unknown:
        raise InputError(['%s%s: not an option of the relay' % (prefix, name) for name in unknown])
    values = dict((name, params.get(name) if params.get(name) is not None else _default(spec))
                  for name, spec in OPTIONS.items())
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
    relay.allow_plaintext_auth = check.flag('allow_plaintext_auth', values['allow_plaintext_auth'])
    relay.tls_connection_reuse = check.flag('tls_connection_reuse', values['tls_connection_reuse'])
    relay.extra_parameters = _extra_parameters(check, values['extra_parameters'])
    relay.prefix = prefix
    relay.config_directory = config_directory
    relay.aliases_path = aliases_path
    if relay.state == 'present':
        relay.upstreams = _upstream_list(check, 'upstreams', values['upstreams'], relay.allow_plaintext_auth)
        allow_wide = check.flag('allow_wide_mynetworks', values['allow_wide_mynetworks'])
        if not isinstance(values['mynetworks'], list):
            check.fail('mynetworks', 'must be a list of CIDRs')
        else:
            relay.mynetworks = [_network(check, 'mynetworks[%d]' % index, item, allow_wide)
                                for index, item in enumerate(values['mynetworks'])]
        relay.inet_interfaces = _interfaces(check, values['inet_interfaces'])
        relay.sender_address = (None if values['sender_address'] is None
                                else check.address('sender_address', values['sender_address']))
        relay.sender_rewrite = _rewrite(check, values['sender_rewrite'])
    if check.errors:
        raise InputError(check.errors)
    return relay


# ---- The wanted state ------------------------------------------------------------------------------

class Host(object):
    """What the model needs to know of the host: Postfix's version and the host's FQDN."""

    def __init__(self, mail_version='', fqdn='localhost'):
        self.mail_version = mail_version
        self.fqdn = fqdn


class Table(object):
    """A lookup table in the config directory: the entries it must hold, or None when it must go."""

    def __init__(self, name, entries, secret=False, probe=False):
        self.name = name
        self.entries = entries
        self.secret = secret
        self.mode = SECRET_MODE if secret else PUBLIC_MODE
        # Part of the upstream settings: a change is checked by the preflight before it goes live.
        self.probe = probe


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


def _map(relay, name):
    return '%s:%s/%s' % (relay.map_type, relay.config_directory, name)


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
    Parameter('biff', SET_BY_RELAY, lambda r, h: 'no', SAME),
    Parameter('append_dot_mydomain', SET_BY_RELAY, lambda r, h: 'no', SAME),
    Parameter('relayhost', 'upstreams', lambda r, h: r.upstreams[0].nexthop, probe=True),
    Parameter('smtp_fallback_relay', 'upstreams', lambda r, h: ', '.join(u.nexthop for u in r.upstreams[1:]), probe=True),
    Parameter('smtp_sasl_auth_enable', 'upstreams', lambda r, h: 'yes' if r.sasl_entries() else 'no', probe=True),
    Parameter('smtp_sasl_password_maps', 'upstreams', lambda r, h: _map(r, SASL_MAP) if r.sasl_entries() else '', probe=True),
    # Without TLS no plaintext mechanism (PLAIN/LOGIN) is used unless the user allowed it explicitly.
    Parameter('smtp_sasl_security_options', 'allow_plaintext_auth',
              lambda r, h: 'noanonymous' if r.allow_plaintext_auth else 'noanonymous, noplaintext', probe=True),
    Parameter('smtp_sasl_tls_security_options', 'allow_plaintext_auth', lambda r, h: 'noanonymous', probe=True),
    Parameter('smtp_tls_security_level', 'upstreams',
              lambda r, h: 'encrypt' if all(u.tls in ENCRYPTING_TLS for u in r.upstreams) else 'may', probe=True),
    Parameter('smtp_tls_wrappermode', 'upstreams', lambda r, h: 'yes' if r.upstreams[0].implicit_tls else '', probe=True),
    Parameter('smtp_tls_policy_maps', 'upstreams', lambda r, h: _map(r, TLS_POLICY_MAP), probe=True),
    Parameter('smtp_tls_CAfile', 'tls_ca_file', lambda r, h: r.tls_ca_file, probe=True),
    Parameter('smtp_tls_loglevel', SET_BY_RELAY, lambda r, h: '1'),
    Parameter('smtp_tls_session_cache_database', 'session_cache_type',
              lambda r, h: '%s:${data_directory}/smtp_scache' % r.session_cache_type),
    Parameter('smtp_tls_connection_reuse', 'tls_connection_reuse', lambda r, h: 'yes' if r.tls_connection_reuse else 'no'),
    # A dead primary costs seconds, not Postfix's 30 s per attempt, before the fallback is tried; and
    # only upstream_address_limit of its addresses are tried, whatever its name resolves to.
    Parameter('smtp_connect_timeout', 'connect_timeout', lambda r, h: '%ds' % r.connect_timeout, probe=True),
    Parameter('smtp_helo_timeout', 'helo_timeout', lambda r, h: '%ds' % r.helo_timeout, probe=True),
    Parameter('smtp_mx_address_limit', 'upstream_address_limit', lambda r, h: str(r.upstream_address_limit)),
    Parameter('smtp_generic_maps', 'sender_rewrite', lambda r, h: _map(r, GENERIC_MAP) if r.generic_entries(h) else ''),
)


class Wanted(object):
    """The Postfix state a Relay wants on a host."""

    def __init__(self, main_cf, parameters, tables, master_cf_enable, root_forward):
        self.main_cf = main_cf                    # the whole text
        self.parameters = parameters              # dict name -> value, as written
        self.tables = tables                      # list of Table (entries None: remove)
        self.master_cf_enable = master_cf_enable  # NAME/TYPE services
        self.root_forward = root_forward          # address, or None: no managed entry

    def removable(self, names, map_type):
        """Those of names (files in the config directory) that are the relay's and not wanted."""
        keep = set(table.name + suffix for table in self.tables if table.entries is not None
                   for suffix in ('', MAP_SUFFIXES[map_type]))
        owned = set(table.name + suffix for table in self.tables for suffix in ('',) + tuple(MAP_SUFFIXES.values()))
        return sorted(name for name in names if name in (owned | set(LEGACY_FILES)) - keep)

    def probe_parameters(self, live):
        """Names of the upstream settings in main.cf whose value differs from the live main.cf's."""
        return [parameter.name for parameter in MAIN_CF
                if parameter.probe and self.parameters.get(parameter.name, '') != live.get(parameter.name, '')]


class Relay(object):
    """The checked input (attributes named as OPTIONS); wanted() computes the Postfix state."""

    config_directory = CONFIG_DIRECTORY
    aliases_path = ALIASES_PATH
    upstreams = ()
    mynetworks = ()
    inet_interfaces = None
    sender_address = None
    sender_rewrite = None

    def sasl_entries(self):
        """SASL password map: next-hop -> username:password, for upstreams with credentials.

        Postfix looks the map up by the next-hop it is trying, so a fallback finds its own credentials.
        """
        return dict((u.nexthop, '%s:%s' % (u.username, u.password)) for u in self.upstreams if u.auth == 'password')

    def tls_policy_entries(self):
        return dict((u.nexthop, u.tls) for u in self.upstreams)

    def local_domains(self, host):
        names = [self.myhostname or host.fqdn, self.myorigin, 'localhost', 'localhost.localdomain']
        return [name for index, name in enumerate(names) if not name.startswith('$') and name not in names[:index]]

    def generic_entries(self, host):
        """smtp_generic_maps: sender_address catches every address of the local domains; sender_rewrite wins."""
        entries = {}
        if self.sender_address:
            entries.update(('@%s' % domain, self.sender_address) for domain in self.local_domains(host))
        entries.update(self.sender_rewrite or {})
        return entries

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
            parameters.extend(self.extra_parameters)
        header = MAIN_CF_HEADER.format(extra=self.prefix + 'extra_parameters',
                                       sasl_map='%s/%s' % (self.config_directory, SASL_MAP))
        main_cf = header + ''.join('%s = %s\n' % item for item in parameters)
        tables = [
            Table(SASL_MAP, (self.sasl_entries() or None) if present else None, secret=True, probe=True),
            Table(TLS_POLICY_MAP, self.tls_policy_entries() if present else None, probe=True),
            Table(GENERIC_MAP, (self.generic_entries(host) or None) if present else None),
        ]
        services = [TLSPROXY_SERVICE] if present and self.tls_connection_reuse else []
        return Wanted(main_cf, dict(parameters), tables, services, self.root_forward if present else None)
