# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The OAuth2 hop on the host: emailproxy in a venv of pinned wheels, its config file and its systemd unit.

Used by the relay_config module. The relay model (_relay_model.Hop) says what the hop must be; this
file reads what the host has, plans the difference (check mode stops there), installs, writes and
restarts, and removes the hop where the relay has no OAuth2 upstream any more. A client secret is in none
of the hop's files (Postfix gives it as the SASL password, from the 0600 map); a service account key or a
certificate's key is in a 0600 file of the hop's user, which no diff shows. The hop's guard (nftables) is
proved after every start, and checked on every run, by a connection as HOP_PROBE_USER that must be refused.
Private to the collection (leading underscore).
"""

from __future__ import annotations

import codecs
import errno
import grp
import os
import pwd
import shutil
import socket
import time

from ansible_collections.smarthost.postfix.plugins.module_utils._config import PlainFile, diff_entry, removal_entry, write_file
from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import PostfixError, last_lines
from ansible_collections.smarthost.postfix.plugins.module_utils._relay_model import (
    HOP_ADDRESS,
    HOP_CONFIG_DIRECTORY,
    HOP_GUARD_TABLE,
    HOP_HOME,
    HOP_INSTALLED,
    HOP_PROBE_USER,
    HOP_REQUIREMENTS,
    HOP_SERVICE,
    HOP_UNIT,
    HOP_USER,
    HOP_VENV,
    NFT,
    POSTFIX_USER,
)
from ansible_collections.smarthost.postfix.plugins.module_utils._tables import read_source

# Seconds the hop may take to listen on all its ports after a (re)start.
START_TIMEOUT = 20
# Seconds the guard's probe waits for a refusal.
GUARD_TIMEOUT = 5


class HopState(object):
    """The hop on the host against the wanted one (a _relay_model.Hop, or None for no hop).

    plan() reads and compares; apply() installs, writes and restarts; remove() takes the hop away.
    """

    def __init__(self, module, hop, wheels, field):
        self.module = module
        self.hop = hop
        self.wheels = wheels
        self.field = field
        self.unit_before = read_source(HOP_UNIT)
        self.requirements = None
        # What plan() finds, and what apply() and remove() did.
        self.venv_needed = self.user_needed = self.secrets_changed = False
        self.restarted = self.removed = self.running = False
        self.unguarded = []
        # The hop's files (PlainFile: content, mode, owner), those to write, and those no upstream needs any more.
        self.files = self.changed_files = self.stale_files = []

    # ---- plan -----------------------------------------------------------------------------------

    @property
    def config_changed(self):
        """Whether a file of the hop (config, guard, keys) is to be written or removed."""
        return bool(self.changed_files or self.stale_files)

    @property
    def unit_changed(self):
        return self.hop is not None and self.unit_before != self.hop.unit

    def _read_files(self):
        """The hop's files as the host has them, and those to write and to remove."""
        self.files = [PlainFile(item.path, item.content, item.mode, item.secret, _owner(item)) for item in self.hop.files]
        self.changed_files = [item for item in self.files if item.changed]
        try:
            present = [os.path.join(HOP_CONFIG_DIRECTORY, name) for name in os.listdir(HOP_CONFIG_DIRECTORY)]
        except OSError:
            present = []
        wanted = set(item.path for item in self.files)
        self.stale_files = sorted(path for path in present if path not in wanted)

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
        self._read_files()
        self.running = self.active()
        # A running hop whose guard is gone (nftables flushed by hand): the restart loads it again.
        self.unguarded = unguarded_ports(self.hop.ports) if self.running else []

    @property
    def changed(self):
        if self.hop is None:
            return self.present_on_host()
        return bool(self.user_needed or self.venv_needed or self.config_changed or self.unit_changed
                    or self.secrets_changed or not self.running or self.unguarded)

    def present_on_host(self):
        return any(os.path.exists(path) for path in (HOP_UNIT, HOP_CONFIG_DIRECTORY, HOP_HOME))

    def reasons(self):
        """Why the hop changes (for the preflight's reasons): never a secret, only what changed."""
        if self.hop is None:
            return []
        names = (('venv', self.venv_needed), ('config', self.config_changed), ('unit', self.unit_changed),
                 ('secret', self.secrets_changed), ('not running', not self.running), ('guard', bool(self.unguarded)))
        return ['oauth2 hop %s' % name for name, flag in names if flag]

    def diff(self):
        if self.hop is None:
            return [removal_entry(path) for path in (HOP_UNIT, HOP_CONFIG_DIRECTORY, HOP_HOME) if os.path.exists(path)]
        entries = [item.diff() for item in self.files if item.rewrite]
        entries.extend(removal_entry(path) for path in self.stale_files)
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
                                             or self.unit_changed or self.secrets_changed or self.unguarded) and self.running

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
        if not os.path.isdir(HOP_CONFIG_DIRECTORY):
            os.mkdir(HOP_CONFIG_DIRECTORY, 0o750)
        os.chown(HOP_CONFIG_DIRECTORY, 0, grp.getgrnam(HOP_USER).gr_gid)
        os.chmod(HOP_CONFIG_DIRECTORY, 0o750)
        for item in self.changed_files:
            item.apply(self.module)
        for path in self.stale_files:
            os.unlink(path)
        systemctl = self.module.get_bin_path('systemctl', required=True)
        if self.unit_changed:
            write_file(self.module, HOP_UNIT, self.hop.unit, 0o644)
            self._run([systemctl, 'daemon-reload'], 'systemctl daemon-reload')
        self._run([systemctl, 'enable', HOP_SERVICE], 'enabling %s' % HOP_SERVICE)
        # Never a reload (SIGHUP): emailproxy then fails to bind its ports again.
        self._run([systemctl, 'restart', HOP_SERVICE], 'restarting %s' % HOP_SERVICE)
        self.restarted = True
        self._wait_listening()
        self._prove_guard()

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
            raise PostfixError('%s does not listen on %s port %s %d s after its start: see journalctl -u %s'
                               % (HOP_SERVICE, HOP_ADDRESS, ', '.join(map(str, waiting)), START_TIMEOUT, HOP_SERVICE))

    def _prove_guard(self):
        """A connection as HOP_PROBE_USER to each of the hop's ports must be refused; else the hop is stopped."""
        unguarded = unguarded_ports(self.hop.ports)
        if unguarded:
            self.module.run_command([self.module.get_bin_path('systemctl', required=True), 'stop', HOP_SERVICE])
            raise PostfixError(
                '%s: its guard does not hold: as the user %s, %s; only %s and root may connect. The hop was stopped, '
                'Postfix was not changed. Is the nftables table inet %s loaded (nft list table inet %s; journalctl -u %s)?'
                % (HOP_SERVICE, HOP_PROBE_USER, '; '.join(unguarded), POSTFIX_USER, HOP_GUARD_TABLE, HOP_GUARD_TABLE,
                   HOP_SERVICE))

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
        if os.path.exists(NFT):
            # The guard stays after a stop; gone with the hop. Absent already after a reboot: no error then.
            self.module.run_command([NFT, 'delete', 'table', 'inet', HOP_GUARD_TABLE])
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


def _owner(item):
    """The user (and group, of the same name) a file of the hop belongs to: the hop's user or root."""
    return HOP_USER if item.hop_owned else 'root'


def unguarded_ports(ports):
    """The hop's ports that a process of HOP_PROBE_USER can connect to, or whose refusal was not seen, as text.

    A forked child drops to that user (no groups) and connects to each port; the guard must refuse it
    (a reset: ECONNREFUSED). The child imports nothing: it may not read the module's files any more.
    """
    try:
        user = pwd.getpwnam(HOP_PROBE_USER)
    except KeyError:
        return ['there is no user %s to try the guard as' % HOP_PROBE_USER]
    codecs.lookup('idna')
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            lines = []
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.settimeout(GUARD_TIMEOUT)
                try:
                    sock.connect((HOP_ADDRESS, port))
                    lines.append('port %d accepted the connection' % port)
                except OSError as exc:
                    if exc.errno != errno.ECONNREFUSED:
                        lines.append('port %d: %s, not refused' % (port, exc.strerror or type(exc).__name__))
                finally:
                    sock.close()
            os.write(writer, '\n'.join(lines).encode('ascii'))
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, 'rb') as handle:
        text = handle.read().decode('ascii')
    dummy, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return ['the probe as %s failed (it could not drop to that user)' % HOP_PROBE_USER]
    return text.split('\n') if text else []


def _listens(port):
    try:
        with socket.create_connection((HOP_ADDRESS, port), timeout=1):
            return True
    except OSError:
        return False
