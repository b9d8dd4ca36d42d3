# -*- coding: utf-8 -*-
# Copyright: contributors to smarthost.postfix
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""relay_os_facts: the few OS facts the relay role needs, from /etc/os-release.

The role reads os-release in the same remote command as the rest of the live state, so a play
that did not gather facts needs no separate setup call. The names follow Ansible's facts
(os_family, distribution, distribution_major_version) because the per-OS vars files are named
after them. An OS this does not recognise gets os_family '' and the role gathers real facts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# os-release ID -> Ansible's distribution name, for the IDs whose spelling differs.
_DISTRIBUTIONS = {
    'almalinux': 'AlmaLinux',
    'amzn': 'Amazon',
    'centos': 'CentOS',
    'debian': 'Debian',
    'fedora': 'Fedora',
    'ol': 'OracleLinux',
    'rhel': 'RedHat',
    'rocky': 'Rocky',
    'ubuntu': 'Ubuntu',
}

# os-release ID or ID_LIKE word -> Ansible's os_family.
_FAMILIES = {
    'debian': 'Debian',
    'ubuntu': 'Debian',
    'rhel': 'RedHat',
    'centos': 'RedHat',
    'fedora': 'RedHat',
}


def relay_os_facts(os_id, version_id='', id_like=''):
    """Return os_family, distribution and distribution_major_version for an os-release ID."""
    os_id = (os_id or '').strip().lower()
    family = ''
    for word in [os_id] + (id_like or '').lower().split():
        if word in _FAMILIES:
            family = _FAMILIES[word]
            break
    return {
        'os_family': family,
        'distribution': _DISTRIBUTIONS.get(os_id, os_id.capitalize()),
        'distribution_major_version': (version_id or '').strip().split('.')[0],
    }


class FilterModule(object):
    """Host facts for the relay role."""

    def filters(self):
        return {'relay_os_facts': relay_os_facts}
