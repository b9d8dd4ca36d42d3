# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.smarthost.postfix.plugins.filter.relay_host import relay_os_facts


@pytest.mark.parametrize('os_id, version_id, id_like, expected', [
    ('debian', '12', '', ('Debian', 'Debian', '12')),
    ('debian', '13', '', ('Debian', 'Debian', '13')),
    ('ubuntu', '24.04', 'debian', ('Debian', 'Ubuntu', '24')),
    ('rhel', '9.4', 'fedora', ('RedHat', 'RedHat', '9')),
    ('almalinux', '10.0', 'rhel centos fedora', ('RedHat', 'AlmaLinux', '10')),
    ('rocky', '8.10', 'rhel centos fedora', ('RedHat', 'Rocky', '8')),
    ('ol', '9.3', 'fedora', ('RedHat', 'OracleLinux', '9')),
    ('fedora', '41', '', ('RedHat', 'Fedora', '41')),
    # Debian testing has no VERSION_ID: no version-specific vars file can match.
    ('debian', '', '', ('Debian', 'Debian', '')),
])
def test_os_release_gives_the_facts_the_vars_files_are_named_after(os_id, version_id, id_like, expected):
    facts = relay_os_facts(os_id, version_id, id_like)
    assert (facts['os_family'], facts['distribution'], facts['distribution_major_version']) == expected


@pytest.mark.parametrize('os_id, id_like', [('opensuse-leap', 'suse opensuse'), ('', '')])
def test_unknown_os_has_no_family_so_the_role_gathers_facts(os_id, id_like):
    assert relay_os_facts(os_id, '15.5', id_like)['os_family'] == ''
