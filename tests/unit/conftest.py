# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Make `ansible_collections.smarthost.postfix` importable for plain pytest runs.

The repo is a flat collection root. Inside an .../ansible_collections/smarthost/postfix tree
(ansible-test, the sanity copy) the directory above `ansible_collections` goes on sys.path;
otherwise a temporary tree with a symlink to the repo is made for the session.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile

import pytest

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _collections_parent():
    parts = COLLECTION_ROOT.split(os.sep)
    if len(parts) >= 3 and parts[-3] == 'ansible_collections':
        return os.sep.join(parts[:-3])
    parent = tempfile.mkdtemp(prefix='smarthost-postfix-unit-')
    # rmtree removes the symlink, never what it points to.
    atexit.register(shutil.rmtree, parent, True)
    namespace_dir = os.path.join(parent, 'ansible_collections', 'smarthost')
    os.makedirs(namespace_dir)
    os.symlink(COLLECTION_ROOT, os.path.join(namespace_dir, 'postfix'))
    return parent


if 'ansible_collections.smarthost.postfix' not in sys.modules:
    sys.path.insert(0, _collections_parent())


@pytest.fixture
def set_module_args():
    """Return a function that makes the next AnsibleModule read the given arguments.

    Logging to the target syslog stays off (what no_target_syslog does) so test secrets are not written to the host's journal.
    """
    from ansible_collections.smarthost.postfix.tests.unit.plugins.modules.module_args import patch_module_args

    stack = contextlib.ExitStack()

    def _set(args):
        stack.enter_context(patch_module_args(dict(args, _ansible_no_log=True)))

    with stack:
        yield _set


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test's module runs start without the warnings and deprecations of earlier tests (AnsibleModule keeps
    them in module-level containers, a list or a dict depending on the ansible-core release, for the process)."""
    from ansible.module_utils.common import warnings

    for name in ('_global_warnings', '_global_deprecations'):
        monkeypatch.setattr(warnings, name, type(getattr(warnings, name))())


@pytest.fixture
def config_dir(tmp_path):
    """A throwaway Postfix config dir: postmap and postconf need a main.cf (and a compatibility_level)."""
    directory = tmp_path / 'postfix'
    directory.mkdir()
    (directory / 'main.cf').write_text('compatibility_level = 3.6\n')
    return str(directory)


@pytest.fixture
def calls(monkeypatch):
    """Every argv the postmap module runs, while still running it for real."""
    from ansible_collections.smarthost.postfix.plugins.module_utils import _postfix

    seen = []
    real_run = _postfix.PostfixCommands.run

    def recording_run(self, argv, **kwargs):
        seen.append(argv)
        return real_run(self, argv, **kwargs)

    monkeypatch.setattr(_postfix.PostfixCommands, 'run', recording_run)
    return seen


@pytest.fixture
def postfix(monkeypatch):
    """The running Postfix and its service, replaced: every look at it and command to it a module makes
    ('status': is its master running; 'reload', 'start', 'stop'; 'systemctl ACTION' for the postfix unit).
    Postfix runs and is enabled unless told otherwise; the host runs systemd when 'systemd' is set.

    Only the running Postfix is replaced: postconf, postmap and postalias run for real.
    """
    from ansible.module_utils.basic import AnsibleModule
    from ansible_collections.smarthost.postfix.plugins.module_utils import _config
    from ansible_collections.smarthost.postfix.plugins.modules import relay_config

    state = {'running': True, 'enabled': True, 'systemd': False, 'commands': [], 'queue_directories': []}
    real_run_command = AnsibleModule.run_command

    def run_command(self, args, **kwargs):
        name = os.path.basename(args[0]) if isinstance(args, list) else None
        if name == 'postfix':
            state['commands'].append(args[-1])
            state['running'] = args[-1] != 'stop' and (state['running'] or args[-1] == 'start')
            return 0, '', ''
        if name == 'systemctl' and args[-1] == 'postfix':
            state['commands'].append('systemctl ' + args[1])
            if args[1] == 'is-enabled':
                return (0, 'enabled\n', '') if state['enabled'] else (1, 'disabled\n', '')
            state['enabled'] = state['enabled'] or args[1] == 'enable'
            state['running'] = state['running'] or args[1] in ('start', 'restart')
            return 0, '', ''
        return real_run_command(self, args, **kwargs)

    def master_running(queue_directory):
        state['commands'].append('status')
        state['queue_directories'].append(queue_directory)
        return state['running']

    monkeypatch.setattr(AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(_config, 'master_running', master_running)
    monkeypatch.setattr(relay_config, 'systemd_runs', lambda: state['systemd'])
    return state


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    """A throwaway CA and server certificates for the local SMTP test servers (smtp_probe_servers.TestPKI)."""
    from ansible_collections.smarthost.postfix.tests.unit.plugins.modules.smtp_probe_servers import TestPKI

    return TestPKI(str(tmp_path_factory.mktemp('pki')))
