# -*- coding: utf-8 -*-
# Copyright: contributors to smarthost.postfix
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""relay_input_errors: the checks of relay role input that an argument spec cannot express.

The role asserts that this list is empty before it touches the host. Every message
names the offending field, so a user can fix the inventory without reading code.
Passwords never appear in a message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.smarthost.postfix.plugins.filter.relay_format import relay_nexthop

_LABEL = re.compile(r'^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$')
_PARAMETER = re.compile(r'^[a-z][a-z0-9_]*$')
_PATH = re.compile(r'^/[A-Za-z0-9._+/-]+$')
_TLS_LEVELS = ('none', 'may', 'encrypt', 'verify', 'secure')
_TLS_ENCRYPTING = ('encrypt', 'verify', 'secure')
_MAP_TYPES = ('hash', 'lmdb', 'cdb', 'btree')

# main.cf parameters the role derives from its own variables: setting them through
# relay_extra_parameters would silently undo a security decision or break the key contract.
RESERVED_PARAMETERS = {
    'relayhost': 'relay_upstreams',
    'smtp_fallback_relay': 'relay_upstreams',
    'smtp_sasl_auth_enable': 'relay_upstreams',
    'smtp_sasl_password_maps': 'relay_upstreams',
    'smtp_sasl_security_options': 'relay_allow_plaintext_auth',
    'smtp_sasl_tls_security_options': 'relay_allow_plaintext_auth',
    'smtp_tls_policy_maps': 'relay_upstreams',
    'smtp_tls_security_level': 'relay_upstreams',
    'smtp_tls_wrappermode': 'relay_upstreams',
    'smtp_tls_cafile': 'relay_tls_ca_file',
    'smtp_generic_maps': 'relay_sender_rewrite',
    'mynetworks': 'relay_mynetworks',
    'inet_interfaces': 'relay_inet_interfaces',
    'smtpd_relay_restrictions': 'relay_mynetworks',
    'myhostname': 'relay_myhostname',
    'myorigin': 'relay_myorigin',
    'default_database_type': 'relay_map_type',
    'smtp_connect_timeout': 'relay_connect_timeout',
    'smtp_helo_timeout': 'relay_helo_timeout',
    'smtp_tls_connection_reuse': 'relay_tls_connection_reuse',
}


def is_hostname(text):
    """RFC 1123 host name (an IPv4 literal passes: its labels are digits)."""
    if not isinstance(text, str) or not text or len(text) > 253:
        return False
    return all(_LABEL.match(label) for label in text.split('.'))


def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def network_error(field, value):
    """Return why value is not a network Postfix accepts in mynetworks, or None."""
    text = str(value)
    bare = text
    if text.startswith('['):
        # Postfix form of IPv6: [addr]/len or [addr]
        match = re.match(r'^\[([^\]]+)\](/\d+)?$', text)
        if not match:
            return "%s: '%s' is not a valid CIDR" % (field, text)
        bare = match.group(1) + (match.group(2) or '')
        if ':' not in match.group(1):
            return "%s: '%s' is not a valid CIDR (brackets are for IPv6 only)" % (field, text)
    try:
        network = ipaddress.ip_network(bare, strict=False)
    except ValueError:
        return "%s: '%s' is not a valid CIDR" % (field, text)
    try:
        ipaddress.ip_network(bare, strict=True)
    except ValueError:
        # Postfix refuses host bits below the mask ("non-null host address bits").
        return "%s: '%s' has host bits set; did you mean '%s'?" % (field, text, network.with_prefixlen)
    return None


def address_error(field, value, allow_domain_only=False):
    """Return why value is not a plain mail address (local@domain), or None."""
    text = value if isinstance(value, str) else ''
    if not text or text != text.strip() or re.search(r'[\s,<>"]', text):
        return "%s: '%s' is not a mail address" % (field, value)
    local, sep, domain = text.rpartition('@')
    if not sep or (not local and not allow_domain_only) or not is_hostname(domain):
        wanted = 'user@domain or @domain' if allow_domain_only else 'user@domain'
        return "%s: '%s' is not a mail address (%s)" % (field, value, wanted)
    return None


def _credential_errors(field, upstream, allow_plaintext):
    username = upstream.get('username')
    password = upstream.get('password')
    if username is None and password is None:
        return []
    if username is None or password is None:
        return ['%s: username and password go together; set both or neither' % field]
    errors = []
    for name, value in (('username', username), ('password', password)):
        text = str(value)
        if not text:
            errors.append('%s.%s: must not be empty' % (field, name))
        elif text != text.strip():
            errors.append('%s.%s: must not start or end with blanks (a map cannot hold them)' % (field, name))
        elif '\n' in text or '\r' in text:
            errors.append('%s.%s: must not contain a line break' % (field, name))
    if ':' in str(username):
        errors.append("%s.username: must not contain ':' (Postfix splits user:password at the first ':')" % field)
    if upstream.get('tls', 'encrypt') == 'none' and not allow_plaintext:
        errors.append('%s: credentials with tls: none would be sent in clear text; use tls: encrypt '
                      'or stronger, or set relay_allow_plaintext_auth: true' % field)
    return errors


def upstream_errors(index, upstream, allow_plaintext):
    """Return the problems of one relay_upstreams entry."""
    field = 'relay_upstreams[%d]' % index
    if not isinstance(upstream, dict):
        return ['%s: must be a dict with at least host' % field]
    errors = []
    host = upstream.get('host')
    if not (is_hostname(host) or (isinstance(host, str) and _is_ip(host))):
        errors.append("%s.host: '%s' is not a host name or IP address" % (field, host))
    elif upstream.get('mx_lookup') and _is_ip(host):
        errors.append('%s: mx_lookup needs a domain name, not the address %s' % (field, host))
    port = upstream.get('port', 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        errors.append('%s.port: %s is not a port (1-65535)' % (field, port))
    tls = upstream.get('tls', 'encrypt')
    if tls not in _TLS_LEVELS:
        errors.append("%s.tls: '%s' is not one of %s" % (field, tls, ', '.join(_TLS_LEVELS)))
    elif upstream.get('implicit_tls') and tls not in _TLS_ENCRYPTING:
        errors.append('%s: implicit_tls needs tls encrypt, verify or secure, not %s' % (field, tls))
    return errors + _credential_errors(field, upstream, allow_plaintext)


def upstreams_errors(upstreams, allow_plaintext):
    """Return the problems of relay_upstreams as a whole and of each entry."""
    if not isinstance(upstreams, list) or not upstreams:
        return ['relay_upstreams: at least one upstream is required when relay_state is present']
    errors = []
    for index, upstream in enumerate(upstreams):
        errors.extend(upstream_errors(index, upstream, allow_plaintext))
    if errors:
        return errors
    seen = {}
    for index, upstream in enumerate(upstreams):
        key = relay_nexthop(upstream)
        if key in seen:
            errors.append('relay_upstreams[%d]: %s is the same next-hop as relay_upstreams[%d]'
                          % (index, key, seen[key]))
        seen.setdefault(key, index)
    implicit = set(bool(upstream.get('implicit_tls')) for upstream in upstreams)
    if len(implicit) > 1:
        errors.append('relay_upstreams: implicit_tls (port 465) and STARTTLS upstreams cannot be mixed: '
                      'Postfix sets smtp_tls_wrappermode per transport and relayhost and '
                      'smtp_fallback_relay share one transport; make all upstreams implicit_tls or none')
    return errors


def _networks_errors(networks):
    if not isinstance(networks, list):
        return ['relay_mynetworks: must be a list of CIDRs']
    errors = []
    for index, network in enumerate(networks):
        error = network_error('relay_mynetworks[%d]' % index, network)
        if error:
            errors.append(error)
    return errors


def _interfaces_errors(interfaces):
    if interfaces in ('all', 'loopback-only'):
        return []
    if not isinstance(interfaces, list) or not interfaces:
        return ["relay_inet_interfaces: must be 'all', 'loopback-only' or a list of IP addresses"]
    return ["relay_inet_interfaces[%d]: '%s' is not an IP address" % (index, address)
            for index, address in enumerate(interfaces) if not _is_ip(str(address))]


def _rewrite_errors(rewrite, sender_address):
    errors = []
    if sender_address is not None:
        error = address_error('relay_sender_address', sender_address)
        if error:
            errors.append(error)
    if not isinstance(rewrite, dict):
        return errors + ['relay_sender_rewrite: must be a dict of local address or @domain to address']
    for key, value in rewrite.items():
        field = 'relay_sender_rewrite[%s]' % key
        error = address_error(field + ' key', key, allow_domain_only=True) or address_error(field, value)
        if error:
            errors.append(error)
    return errors


def _extra_parameters_errors(parameters):
    if not isinstance(parameters, dict):
        return ['relay_extra_parameters: must be a dict of main.cf parameter names to values']
    errors = []
    for name, value in parameters.items():
        field = 'relay_extra_parameters.%s' % name
        if not isinstance(name, str) or not _PARAMETER.match(name):
            errors.append("%s: '%s' is not a Postfix parameter name" % (field, name))
        elif name.lower() in RESERVED_PARAMETERS:
            errors.append('%s: is set by the role; use %s instead' % (field, RESERVED_PARAMETERS[name.lower()]))
        elif '\n' in str(value) or '\r' in str(value):
            errors.append('%s: value must not contain a line break' % field)
    return errors


def _scalar_errors(data):
    errors = []
    for name in ('relay_myhostname', 'relay_myorigin'):
        value = data.get(name)
        if value is not None and not (is_hostname(value) or value in ('$myhostname', '$mydomain')):
            errors.append("%s: '%s' is not a host name" % (name, value))
    if data.get('relay_root_forward') is not None:
        error = address_error('relay_root_forward', data['relay_root_forward'])
        if error:
            errors.append(error)
    for name, upper in (('relay_connect_timeout', 300), ('relay_helo_timeout', 300)):
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper):
            errors.append('%s: %s is not a number of seconds between 1 and %d' % (name, value, upper))
    ca_file = data.get('relay_tls_ca_file')
    if ca_file is not None and not _PATH.match(str(ca_file)):
        errors.append("relay_tls_ca_file: '%s' is not an absolute path of letters, digits and ._+-/" % ca_file)
    if data.get('relay_map_type', 'hash') not in _MAP_TYPES:
        errors.append("relay_map_type: '%s' is not one of %s" % (data.get('relay_map_type'), ', '.join(_MAP_TYPES)))
    return errors


def relay_input_errors(data):
    """Return a list of messages, one per problem; empty when the input is usable.

    data maps the relay_* variable names to their values. With relay_state absent
    only what removal needs is checked.
    """
    state = data.get('relay_state', 'present')
    if state not in ('present', 'absent'):
        return ["relay_state: '%s' is not present or absent" % state]
    errors = _scalar_errors(data)
    if state == 'absent':
        return errors
    errors.extend(upstreams_errors(data.get('relay_upstreams'), bool(data.get('relay_allow_plaintext_auth'))))
    errors.extend(_networks_errors(data.get('relay_mynetworks')))
    errors.extend(_interfaces_errors(data.get('relay_inet_interfaces')))
    errors.extend(_rewrite_errors(data.get('relay_sender_rewrite') or {}, data.get('relay_sender_address')))
    errors.extend(_extra_parameters_errors(data.get('relay_extra_parameters') or {}))
    return errors


class FilterModule(object):
    """Input validation for the relay role."""

    def filters(self):
        return {'relay_input_errors': relay_input_errors}
