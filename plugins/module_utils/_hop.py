# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The OAuth2 hop on the host: emailproxy in a venv of pinned wheels, its config file and its systemd unit.

Used by the relay_config module. The relay model (_relay_model.Hop) says what the hop must be; this
file reads what the host has, plans the difference (check mode stops there), installs, writes and
restarts, and removes the hop where the relay has no OAuth2 upstream any more. The hop's files hold
no secret: Postfix gives the client secret as the SASL password (the 0600 map).
Private to the collection (leading underscore).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import time

from ansible_collections.smarthost.postfix.plugins.module_utils._config import diff_entry, write_file
from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import PostfixError, last_lines
from ansible_collections.smarthost.postfix.plugins.module_utils._relay_model import (
    HOP_CONFIG,
    HOP_CONFIG_DIRECTORY,
    HOP_HOME,
    HOP_INSTALLED,
    HOP_MODE,
    HOP_REQUIREMENTS,
    HOP_SERVICE,
    HOP_UNIT,
    HOP_USER,
    HOP_VENV,
)
from ansible_collections.smarthost.postfix.plugins.module_utils._tables import read_source

# Seconds the hop may take to listen on all its ports after a (re)start.
START_TIMEOUT = 20


class HopState(object):
    """The hop on the host against the wanted one (a _relay_model.Hop, or None for no hop).

    plan() reads and compares; apply() installs, writes and restarts; remove() takes the hop away.
    """

    def __init__(self, module, hop, wheels, field):
        self.module = module
        self.hop = hop
        self.wheels = wheels
        self.field = field
        self.config_before = read_source(HOP_CONFIG)
        self.unit_before = read_source(HOP_UNIT)
        self.requirements = None
        # What plan() finds, and what apply() and remove() did.
        self.venv_needed = self.user_needed = self.secrets_changed = False
        self.restarted = self.removed = self.running = False

    # ---- plan -----------------------------------------------------------------------------------

    @property
    def config_changed(self):
        return self.hop is not None and (self.config_before != self.hop.config or self._mode_differs())

    @property
    def unit_changed(self):
        return self.hop is not None and self.unit_before != self.hop.unit

    def _mode_differs(self):
        try:
            stat = os.stat(HOP_CONFIG)
        except OSError:
            return True
        try:
            owner = pwd.getpwuid(stat.st_uid).pw_name
        except KeyError:
            owner = None
        return '%04o' % (stat.st_mode & 0o7777) != HOP_MODE or owner != HOP_USER

    def plan(self, changed_keys):
        """What must change; changed_keys: the SASL map keys whose entries change (a secret rotated)."""
        if self.hop is None:
            return
        self.user_needed = not _user_exists(HOP_USER)
        installed = read_source(HOP_INSTALLED)
        source = os.path.join(self.wheels or '', HOP_REQUIREMENTS)
        self.requirements = read_source(source) if self.wheels else None
        if self.requirements is None:
            if installed is None or not os.path.exists(os.path.join(HOP_VENV, 'bin', 'emailproxy')):
                raise PostfixError('%soauth2_wheels: the OAuth2 hop is not installed, and %s is not on the host: the '
                                   'relay role copies the wheels of roles/relay/files/%s there from the controller '
                                   'directory that relay_oauth2_wheels names (see the role README)'
                                   % (self.field, source if self.wheels else 'no wheel directory', HOP_REQUIREMENTS))
            self.requirements = installed
        self.venv_needed = installed != self.requirements or not os.path.exists(os.path.join(HOP_VENV, 'bin', 'emailproxy'))
        self.secrets_changed = any(key in self.hop.nexthops for key in changed_keys)
        self.running = self.active()

    @property
    def changed(self):
        if self.hop is None:
            return self.present_on_host()
        return bool(self.user_needed or self.venv_needed or self.config_changed or self.unit_changed
                    or self.secrets_changed or not self.running)

    def present_on_host(self):
        return any(os.path.exists(path) for path in (HOP_UNIT, HOP_CONFIG_DIRECTORY, HOP_HOME))

    def reasons(self):
        """Why the hop changes (for the preflight's reasons): never a secret, only what changed."""
        if self.hop is None:
            return []
        names = (('venv', self.venv_needed), ('config', self.config_changed), ('unit', self.unit_changed),
                 ('secret', self.secrets_changed), ('not running', not self.running))
        return ['oauth2 hop %s' % name for name, flag in names if flag]

    def diff(self):
        if self.hop is None:
            return [dict(before_header=path, after_header=path, before='present\n', after='absent\n')
                    for path in (HOP_UNIT, HOP_CONFIG_DIRECTORY, HOP_HOME) if os.path.exists(path)]
        entries = []
        if self.config_before != self.hop.config:
            entries.append(diff_entry(HOP_CONFIG, self.config_before, self.hop.config))
        if self.unit_before != self.hop.unit:
            entries.append(diff_entry(HOP_UNIT, self.unit_before, self.hop.unit))
        if self.venv_needed:
            entries.append(diff_entry(HOP_INSTALLED, read_source(HOP_INSTALLED), self.requirements))
        return entries

    def active(self):
        systemctl = self.module.get_bin_path('systemctl')
        if not systemctl:
            return False
        rc, dummy, dummy = self.module.run_command([systemctl, 'is-active', '--quiet', HOP_SERVICE])
        return rc == 0

    def current(self):
        """Whether the running hop already has the wanted settings (the preflight can go through it in check mode)."""
        return self.hop is not None and not (self.user_needed or self.venv_needed or self.config_changed
                                             or self.unit_changed or self.secrets_changed) and self.running

    # ---- apply ----------------------------------------------------------------------------------

    def apply(self):
        """Install what is missing, write the files and (re)start the hop; then wait until it listens."""
        if self.hop is None or not self.changed:
            return
        if self.user_needed:
            self._run(['useradd', '--system', '--home-dir', '/nonexistent', '--no-create-home',
                       '--shell', '/usr/sbin/nologin', '--user-group', HOP_USER], 'creating the user %s' % HOP_USER)
        if self.venv_needed:
            self._install()
        uid, gid = pwd.getpwnam(HOP_USER).pw_uid, grp.getgrnam(HOP_USER).gr_gid
        if not os.path.isdir(HOP_CONFIG_DIRECTORY):
            os.mkdir(HOP_CONFIG_DIRECTORY, 0o750)
        os.chown(HOP_CONFIG_DIRECTORY, 0, gid)
        os.chmod(HOP_CONFIG_DIRECTORY, 0o750)
        if self.config_changed:
            write_file(self.module, HOP_CONFIG, self.hop.config, int(HOP_MODE, 8))
            os.chown(HOP_CONFIG, uid, gid)
            os.chmod(HOP_CONFIG, int(HOP_MODE, 8))
        systemctl = self.module.get_bin_path('systemctl', required=True)
        if self.unit_changed:
            write_file(self.module, HOP_UNIT, self.hop.unit, 0o644)
            self._run([systemctl, 'daemon-reload'], 'systemctl daemon-reload')
        self._run([systemctl, 'enable', HOP_SERVICE], 'enabling %s' % HOP_SERVICE)
        # Never a reload (SIGHUP): emailproxy then fails to bind its ports again.
        self._run([systemctl, 'restart', HOP_SERVICE], 'restarting %s' % HOP_SERVICE)
        self.restarted = True
        self._wait_listening()

    def _install(self):
        python = self.module.get_bin_path('python3', required=True)
        if os.path.isdir(HOP_VENV):
            shutil.rmtree(HOP_VENV)
        os.makedirs(HOP_HOME, 0o755, exist_ok=True)
        self._run([python, '-m', 'venv', HOP_VENV], 'creating the venv %s' % HOP_VENV)
        self._run([os.path.join(HOP_VENV, 'bin', 'pip'), 'install', '--quiet', '--no-index', '--disable-pip-version-check',
                   '--find-links', self.wheels, '--require-hashes', '--only-binary', ':all:',
                   '-r', os.path.join(self.wheels, HOP_REQUIREMENTS)],
                  'installing the OAuth2 hop from %s (offline, pinned wheels)' % self.wheels)
        write_file(self.module, HOP_INSTALLED, self.requirements, 0o644)

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(self.hop.ports)
        while waiting and time.monotonic() < deadline:
            waiting = [port for port in waiting if not _listens(port)]
            if waiting:
                time.sleep(0.2)
        if waiting:
            raise PostfixError('%s does not listen on 127.0.0.1 port %s %d s after its start: see journalctl -u %s'
                               % (HOP_SERVICE, ', '.join(map(str, waiting)), START_TIMEOUT, HOP_SERVICE))

    def remove(self):
        """Stop and remove the hop where no OAuth2 upstream is left (the system user stays)."""
        if self.hop is not None or not self.present_on_host():
            return
        systemctl = self.module.get_bin_path('systemctl')
        if systemctl and os.path.exists(HOP_UNIT):
            self.module.run_command([systemctl, 'disable', '--now', HOP_SERVICE])
        for path in (HOP_UNIT,):
            if os.path.exists(path):
                os.unlink(path)
        for path in (HOP_CONFIG_DIRECTORY, HOP_HOME):
            shutil.rmtree(path, ignore_errors=True)
        if systemctl:
            self.module.run_command([systemctl, 'daemon-reload'])
        self.removed = True

    def _run(self, argv, what):
        rc, out, err = self.module.run_command(argv, environ_update={'LC_ALL': 'C'})
        if rc != 0:
            raise PostfixError('%s failed (exit status %d): %s' % (what, rc, last_lines(err or out)))


def _user_exists(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _listens(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1):
            return True
    except OSError:
        return False
