# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hand a module its arguments as Ansible does, on every ansible-core release the collection claims."""

from __future__ import annotations

import contextlib
import json
from unittest import mock

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args as _patch  # ansible-core 2.19 and newer
except ImportError:
    _patch = None


@contextlib.contextmanager
def patch_module_args(args):
    """While it lasts, the next AnsibleModule reads args: ansible-core's own helper where it has one,
    otherwise what that helper does for the older releases (2.17, 2.18)."""
    if _patch is not None:
        with _patch(args):
            yield
    else:
        with mock.patch.object(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode()):
            yield
