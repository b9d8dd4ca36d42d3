# -*- coding: utf-8 -*-
# Copyright: contributors to smarthost.postfix
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn relay role input into the exact strings Postfix expects.

relay_nexthop is the single source of every upstream key: relayhost,
smtp_fallback_relay, the SASL password map and the TLS policy map all use it,
so they can never disagree about brackets or ports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress


def _is_ipv6(text):
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def relay_nexthop(upstream):
    """Return the Postfix next-hop for one relay_upstreams entry.

    mx_lookup false gives [host]:port (no MX lookup), true gives host:port.
    An IPv6 literal is written the way Postfix wants it: [ipv6:addr]:port.
    """
    host = str(upstream['host'])
    port = int(upstream.get('port') or 587)
    if _is_ipv6(host):
        return '[ipv6:%s]:%d' % (host, port)
    if upstream.get('mx_lookup'):
        return '%s:%d' % (host, port)
    return '[%s]:%d' % (host, port)


def relay_postfix_network(network):
    """Return a mynetworks entry in Postfix notation: IPv6 as [addr]/len."""
    text = str(network).strip()
    if text.startswith('['):
        return text
    address, sep, length = text.partition('/')
    if _is_ipv6(address):
        return '[%s]%s%s' % (address, sep, length)
    return text


def relay_sasl_entries(upstreams):
    """Return the SASL password map: next-hop -> username:password, for upstreams with credentials.

    Postfix looks the map up by remote host name, then by the destination it is
    trying; for relayhost and for each smtp_fallback_relay entry that destination
    is the next-hop string itself, so a fallback finds its own credentials.
    """
    return dict(
        (relay_nexthop(upstream), '%s:%s' % (upstream['username'], upstream['password']))
        for upstream in upstreams
        if upstream.get('username') is not None
    )


def relay_tls_policy_entries(upstreams):
    """Return the TLS policy map: next-hop -> security level of each upstream."""
    return dict((relay_nexthop(upstream), upstream.get('tls') or 'encrypt') for upstream in upstreams)


def relay_generic_entries(rewrite, sender_address, local_domains):
    """Return the smtp_generic_maps entries.

    sender_address, when set, catches every address of the local domains
    (root, cron, user@localhost.localdomain ...); explicit rewrite entries win.
    """
    entries = {}
    if sender_address:
        for domain in local_domains:
            if domain and not str(domain).startswith('$'):
                entries['@%s' % domain] = sender_address
    entries.update(rewrite or {})
    return entries


class FilterModule(object):
    """Postfix formatting filters for the relay role."""

    def filters(self):
        return {
            'relay_nexthop': relay_nexthop,
            'relay_postfix_network': relay_postfix_network,
            'relay_sasl_entries': relay_sasl_entries,
            'relay_tls_policy_entries': relay_tls_policy_entries,
            'relay_generic_entries': relay_generic_entries,
        }
