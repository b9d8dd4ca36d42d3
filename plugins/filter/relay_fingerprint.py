# -*- coding: utf-8 -*-
# Copyright: contributors to smarthost.postfix
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Digests of the desired relay state that the role compares with what the host reports.

relay_map_digest is the controller's half of roles/relay/files/relay_map_digest.sh: for the
entries a postmap task would write it gives the digest that the script prints for a map that
holds exactly them, so the role can skip the module call. Any difference, including a change of
format on either side, only makes the role run the module. The unit tests run both halves
against the real postmap.

relay_preflight_fingerprint names the upstream settings a preflight probe checked.

Both are derived from passwords: the role never prints them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json


def _c_sorted(lines):
    """Lines in the order of LC_ALL=C sort: by bytes."""
    return sorted(lines, key=lambda line: line.encode('utf-8', 'surrogateescape'))


def _block(lines):
    return ''.join(line + '\n' for line in lines)


def relay_map_digest(entries, mode):
    """Return the sha256 that relay_map_digest.sh prints for a current map holding entries.

    The hashed text: the octal mode of the source and of the compiled map (as stat %a prints
    it), no staleness mark, the sorted source lines ('key value', as the postmap module writes
    them), an empty line, the sorted 'postmap -s' lines (keys lower-cased as Postfix folds them,
    a tab, the value) and postmap's exit status 0.
    """
    permissions = '%o' % int(str(mode), 8)
    pairs = [(str(key), str(value)) for key, value in (entries or {}).items()]
    text = (
        _block([permissions, permissions])
        + _block(_c_sorted('%s %s' % pair for pair in pairs))
        + '\n'
        + _block(_c_sorted('%s\t%s' % (key.lower(), value) for key, value in pairs))
        + '0\n'
    )
    return hashlib.sha256(text.encode('utf-8', 'surrogateescape')).hexdigest()


def relay_preflight_fingerprint(upstreams, ca_file, allow_plaintext_auth, timeout):
    """Return the sha256 of everything the preflight probe of these upstreams depends on.

    Upstreams are normalised with the probe's defaults, so writing a default out does not
    count as a change.
    """
    probes = []
    for upstream in upstreams or []:
        probes.append({
            'host': str(upstream['host']),
            'port': int(upstream.get('port') or 587),
            'mx_lookup': bool(upstream.get('mx_lookup')),
            'tls': str(upstream.get('tls') or 'encrypt'),
            'implicit_tls': bool(upstream.get('implicit_tls')),
            'username': None if upstream.get('username') is None else str(upstream['username']),
            'password': None if upstream.get('password') is None else str(upstream['password']),
        })
    settings = {
        'version': 1,
        'upstreams': probes,
        'ca_file': str(ca_file),
        'allow_plaintext_auth': bool(allow_plaintext_auth),
        'timeout': int(timeout),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode('utf-8')).hexdigest()


class FilterModule(object):
    """State digests for the relay role."""

    def filters(self):
        return {
            'relay_map_digest': relay_map_digest,
            'relay_preflight_fingerprint': relay_preflight_fingerprint,
        }
