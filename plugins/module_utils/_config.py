# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One checked change of Postfix's configuration: lookup tables, plain files, master.cf and main.cf.

Used by the postfix_config and relay_config modules. Private to the collection (leading underscore).
A ConfigChange is planned (files read, differences and diffs computed, nothing written), checked
(Postfix itself reads a staging copy of the new main.cf and master.cf), then applied (tables and plain
files first, then master.cf, then main.cf, each replaced by a rename) and Postfix is reloaded. A
refusal at any step before apply() leaves every live file as it was.

master.cf changes are services to enable (commented out by the distribution) and a managed block of
service definitions between BEGIN/END marker lines, which is replaced whole (or removed) on each run.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import tempfile
import time

from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import (
    SECRET_MASK,
    PostfixCommands,
    PostfixError,
    last_lines,
    parse_main_cf,
)
from ansible_collections.smarthost.postfix.plugins.module_utils._tables import (
    apply_tables,
    check_config_directory,
    plan_tables,
    private_umask,
    read_source,
)

SERVICE_TYPES = ('inet', 'unix', 'unix-dgram', 'fifo', 'pass')
REFUSED = 'Postfix refuses the new main.cf: '
# Postfix reads a main.cf younger than this again until it is that old (seconds).
MAIN_CF_SETTLE = 2


def parse_service(spec):
    """NAME/TYPE as (name, type); the name may hold a host:port, never whitespace or '/'."""
    name, slash, service_type = spec.rpartition('/')
    if not slash or not name or '/' in name or any(char.isspace() or char == '#' for char in name) \
            or service_type not in SERVICE_TYPES:
        raise PostfixError('master_cf_enable: %r is not NAME/TYPE with TYPE one of %s' % (spec, ', '.join(SERVICE_TYPES)))
    return name, service_type


def enable_service(lines, spec):
    """Lines of master.cf with the service enabled, and whether they changed."""
    name, service_type = parse_service(spec)
    pattern = re.compile(r'\A(#\s*)?%s\s+%s(\s|\Z)' % (re.escape(name), re.escape(service_type)))
    matches = [index for index, line in enumerate(lines) if pattern.match(line)]
    if any(not lines[index].startswith('#') for index in matches):
        return lines, False
    if not matches:
        raise PostfixError('master.cf has no %s service, enabled or commented out: add its line to master.cf' % spec)
    start = matches[0]
    lines = list(lines)
    lines[start] = lines[start].lstrip('#').lstrip()
    # "#  -o name=value" or "#  flags=... argv=..." lines continue the commented service; master.cf's
    # own comments have one space after the '#' ("# Interfaces to ...").
    index = start + 1
    while index < len(lines) and re.match(r'\A#(\s{2,}|\s+-o\s)\S', lines[index]):
        lines[index] = lines[index][1:]
        index += 1
    return lines, True


def _block_lines(lines, marker):
    """(start, end) of the lines of the block of marker in lines, its marker lines included, or None.

    A BEGIN line without its END line after it is no block: nothing is taken away then.
    """
    begin, end = '# BEGIN %s' % marker, '# END %s' % marker
    if begin not in lines or end not in lines[lines.index(begin):]:
        return None
    start = lines.index(begin)
    return start, lines.index(end, start)


def replace_block(text, marker, body, first=False):
    """text with the block between '# BEGIN marker' and '# END marker' replaced by body ('' removes it).

    The block goes first (first: where the first of duplicate keys wins, as in /etc/aliases) or last; a
    line outside the markers is never touched.
    """
    lines = (text or '').split('\n')
    found = _block_lines(lines, marker)
    if found:
        lines = lines[:found[0]] + lines[found[1] + 1:]
    rest = '\n'.join(lines)
    block = '# BEGIN %s\n%s# END %s\n' % (marker, body, marker) if body else ''
    if first:
        return block + rest
    if block and rest and not rest.endswith('\n'):
        rest += '\n'
    return rest + block


def read_block(text, marker):
    """The body of the block between '# BEGIN marker' and '# END marker' in text, '' when there is none."""
    lines = (text or '').split('\n')
    found = _block_lines(lines, marker)
    return ''.join(line + '\n' for line in lines[found[0] + 1:found[1]]) if found else ''


def mynetworks_table(value):
    """A CIDR table source from a mynetworks value: one 'network ok' line per network.

    Lookup tables (type:name) and pattern files (/path) are left to Postfix: they are no networks.
    """
    lines = []
    for item in re.split(r'[\s,]+', value.strip()):
        if not item or item.startswith('/') or re.match(r'\A[a-z0-9_]+:', item, re.IGNORECASE):
            continue
        lines.append('%s ok\n' % item)
    return ''.join(lines)


def write_file(module, path, content, new_mode=0o644):
    """Replace path by a rename; an existing file's owner, group and mode carry over (atomic_move)."""
    handle, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=os.path.dirname(path))
    with os.fdopen(handle, 'w', encoding='utf-8', errors='surrogateescape') as tmp:
        tmp.write(content)
    if not os.path.exists(path):
        os.chmod(tmp_path, new_mode)
    module.atomic_move(tmp_path, path)


def diff_entry(path, before, after):
    return {'before_header': path, 'after_header': path, 'before': before or '', 'after': after}


def removal_entry(path):
    """The diff of a file (or directory) that the run removes: its name, never its content."""
    return diff_entry(path, 'present\n', 'absent\n')


def masked(text, changed=False):
    """What a diff shows of a secret file: that it exists, and whether it changes; never a line of it."""
    if text is None:
        return ''
    return SECRET_MASK + (' (changed)' if changed else '') + '\n'


class PlainFile(object):
    """A file written as given (a regexp table, a certificate, a file of the OAuth2 hop): planned, diffed and
    applied by ConfigChange and HopState. With owner (a user whose group has the same name), owner and group are
    part of the file's wanted state; without, they stay as they are."""

    def __init__(self, path, content, mode, secret, owner=None):
        self.path, self.content, self.mode, self.secret, self.owner = path, content, mode, secret, owner
        self.before = read_source(path)
        self.rewrite = self.before != content
        self.attributes_differ = self.before is not None and _attributes(path, owner is not None) != (mode, owner, owner)

    @property
    def changed(self):
        return self.rewrite or self.attributes_differ

    def diff(self):
        if self.secret:
            return diff_entry(self.path, masked(self.before), masked(self.content, self.rewrite))
        return diff_entry(self.path, self.before, self.content)

    def apply(self, module):
        if self.rewrite:
            # Private until the mode is set: atomic_move gives a file it creates 0666 & ~umask.
            with private_umask():
                write_file(module, self.path, self.content, int(self.mode, 8))
        wanted = dict(mode=self.mode) if self.owner is None else dict(mode=self.mode, owner=self.owner, group=self.owner)
        module.set_fs_attributes_if_different(module.load_file_common_arguments(wanted, path=self.path), False)


def _attributes(path, with_owner):
    """A file's mode and, with_owner, its owner's and group's names (None for an id without a name)."""
    stat = os.stat(path)
    mode = '%04o' % (stat.st_mode & 0o7777)
    if not with_owner:
        return mode, None, None
    try:
        owner = pwd.getpwuid(stat.st_uid).pw_name
    except KeyError:
        owner = None
    try:
        group = grp.getgrgid(stat.st_gid).gr_name
    except KeyError:
        group = None
    return mode, owner, group


def master_running(queue_directory):
    """Whether a Postfix master runs for queue_directory: its pid/master.pid names a live process called
    master. What `postfix status` tells, without the shell script, its commands and the log line it writes."""
    try:
        with open(os.path.join(queue_directory, 'pid', 'master.pid')) as handle:
            pid = int(handle.read().strip())
        with open('/proc/%d/comm' % pid) as handle:
            return handle.read().strip() == 'master'
    except (OSError, ValueError):
        return False


class ConfigChange(object):
    """Tables, master.cf services and main.cf of one config directory, as one checked change."""

    def __init__(self, module, directory):
        if not os.path.isdir(directory):
            raise PostfixError('config_directory %s does not exist: install postfix' % directory)
        self.module = module
        self.directory = directory
        self.main_path = os.path.join(directory, 'main.cf')
        self.master_path = os.path.join(directory, 'master.cf')
        self.postfix = PostfixCommands(module, directory)
        self.plans = []
        self.staging = None

    def plan(self, main_cf=None, master_cf_enable=(), tables=(), map_type=None, master_cf_block=None, files=()):
        """Read the live files and decide what changes; writes nothing.

        main_cf None leaves main.cf as it is. tables are entries of postmap's tables option.
        master_cf_block is (marker, services): the managed block of master.cf ('' services: no block);
        None leaves master.cf's blocks alone. files are (path, content, mode, secret) written as given.
        """
        self.main_before = read_source(self.main_path)
        self.main_after = main_cf if main_cf is not None else self.main_before
        if self.main_after is None:
            raise PostfixError('%s does not exist and main_cf is not given' % self.main_path)
        self.master_before = read_source(self.master_path)
        # Postfix reads master.cf too when it checks main.cf (postconf -n warns without one).
        if self.master_before is None and (master_cf_enable or master_cf_block or self.main_after != self.main_before):
            raise PostfixError('%s does not exist: install postfix' % self.master_path)
        lines, self.enabled = (self.master_before or '').splitlines(True), []
        for spec in master_cf_enable:
            lines, changed = enable_service(lines, spec)
            if changed:
                self.enabled.append(spec)
        self.master_after = ''.join(lines) if self.enabled else self.master_before
        if master_cf_block is not None and self.master_before is not None:
            self.master_after = replace_block(self.master_after, master_cf_block[0], master_cf_block[1])
        self.master_changed = self.master_after != self.master_before
        self.main_changed = self.main_after != self.main_before
        self.files = [PlainFile(*item) for item in files]
        if tables:
            if self.main_before is None:
                # postmap needs a main.cf: a directory without one is checked with the new one first.
                self.check()
                self.postfix = PostfixCommands(self.module, self.staging)
            else:
                check_config_directory(self.directory)
            defaults = dict(type=map_type, mode='0600', owner=None, group=None, tables=list(tables))
            self.plans = plan_tables(self.module, self.postfix, defaults)
        return self

    @property
    def files_changed(self):
        """Whether main.cf, master.cf or a plain file changes (tables: tables_changed)."""
        return self.main_changed or self.master_changed or any(item.changed for item in self.files)

    def tables_changed(self, index=None):
        plans = self.plans if index is None else [self.plans[index]]
        return any(plan['rebuild'] for plan in plans)

    def diff(self):
        """One diff per changed file, tables and plain files first (secrets masked), then master.cf and main.cf."""
        return [plan['diff'] for plan in self.plans if 'diff' in plan and plan['rebuild']] + [
            item.diff() for item in self.files if item.rewrite] + [
            diff_entry(path, before, after) for path, before, after, differs in (
                (self.master_path, self.master_before, self.master_after, self.master_changed),
                (self.main_path, self.main_before, self.main_after, self.main_changed))
            if differs]

    def check(self, validate=None):
        """Let Postfix read the new main.cf and master.cf in a staging directory; raise what it refuses.

        The staging directory, private and inside the config directory, stays until cleanup().
        """
        if self.staging is not None or not (self.main_changed or self.master_changed):
            return
        self.staging = tempfile.mkdtemp(prefix='.staging.', dir=self.directory)
        write = dict(encoding='utf-8', errors='surrogateescape')
        with open(os.path.join(self.staging, 'main.cf'), 'w', **write) as handle:
            handle.write(self.main_after)
        # Old enough not to be reread while postconf runs (MAIN_CF_SETTLE).
        past = time.time() - 60
        os.utime(os.path.join(self.staging, 'main.cf'), (past, past))
        if self.master_after is not None:
            with open(os.path.join(self.staging, 'master.cf'), 'w', **write) as handle:
                handle.write(self.master_after)
        staged = PostfixCommands(self.module, self.staging)
        dummy, dummy, err = staged.run(staged._argv('postconf', '-n'))
        warnings = sorted(set(line.strip() for line in err.split('\n') if line.strip()))
        if warnings:
            raise PostfixError(self._refused(warnings))
        rc, out, err = staged.run(staged._argv('postconf', '-h', 'mynetworks'))
        if rc != 0:
            raise PostfixError(self._refused(err.split('\n') or ['postconf -h mynetworks failed']))
        table = os.path.join(self.staging, 'mynetworks.cidr')
        with open(table, 'w') as handle:
            handle.write(mynetworks_table(out))
        # Like every Postfix command, postmap also dies on a bad global parameter (host names, addresses,
        # compatibility_level, mail_owner): the check the master makes at start-up.
        dummy, dummy, err = staged.run(staged._argv('postmap', '-q', '127.0.0.1', 'cidr:' + table))
        if err.strip():
            raise PostfixError(self._refused(err.split('\n')))
        if validate:
            self._validate(validate)

    def _refused(self, lines):
        """Postfix's complaint in one line; the temporary directory's name would only confuse, so it goes."""
        text = ' / '.join(line.strip() for line in lines if line.strip())
        return REFUSED + text.replace(os.path.join(self.staging, ''), 'staging ')

    def _validate(self, command):
        if '%s' not in command:
            raise PostfixError('validate must contain %s, the staging directory')
        rc, out, err = self.module.run_command(command.replace('%s', self.staging))
        if rc != 0:
            raise PostfixError('validate refused the new configuration (exit status %d): %s' % (rc, (err or out).strip()))

    def apply(self):
        """Write what plan() decided, tables and files first (check mode: attributes reported only); the table results."""
        results = apply_tables(self.module, self.postfix, self.plans)
        if self.module.check_mode:
            return results
        for item in self.files:
            item.apply(self.module)
        # master.cf before main.cf: main.cf may name a service that only the new master.cf defines.
        if self.master_changed:
            write_file(self.module, self.master_path, self.master_after)
        if self.main_changed:
            write_file(self.module, self.main_path, self.main_after)
            past = time.time() - MAIN_CF_SETTLE
            os.utime(self.main_path, (past, past))
        return results

    def cleanup(self):
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def running(self):
        """Whether Postfix runs with this config directory (its queue directory's master.pid)."""
        queue_directory = parse_main_cf(self.main_before or '').get('queue_directory')
        if queue_directory is None:
            queue_directory = self.postfix.defaults('queue_directory')['queue_directory']
        elif '$' in queue_directory:
            rc, out, err = self.postfix.run(self.postfix._argv('postconf', '-x', '-h', 'queue_directory'))
            if rc != 0:
                raise PostfixError('postconf -x -h queue_directory failed: %s' % last_lines(err))
            queue_directory = out.strip()
        return master_running(queue_directory)

    def reload(self):
        """Reload a running Postfix; a stopped one stays stopped (starting it is the service manager's job)."""
        if not self.running():
            return False
        rc, out, err = self.module.run_command([self.postfix.binary('postfix'), '-c', self.directory, 'reload'])
        if rc != 0:
            raise PostfixError('postfix reload failed: %s' % (err or out).strip())
        return True
