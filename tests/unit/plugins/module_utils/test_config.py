# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The managed block of a file (master.cf's routes, the aliases' root entry): replaced whole, nothing else touched.
Whether Postfix runs: the queue directory's master.pid names a live master process. A plain file's plan: content,
mode and, where it has one, owner."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys

import pytest

from ansible_collections.smarthost.postfix.plugins.module_utils import _config
from ansible_collections.smarthost.postfix.plugins.module_utils._config import master_running, read_block, replace_block

MARKER = 'routes managed by a test'
MASTER = 'smtp      inet  n       -       y       -       -       smtpd\n#tlsproxy  unix  -       -       y       -       0       tlsproxy\n'
SERVICE = 'relay-a   unix  -       -       n       -       -       smtp\n  -o syslog_name=postfix/$service_name\n'


def test_a_block_is_added_last_replaced_whole_and_removed():
    added = replace_block(MASTER, MARKER, SERVICE)
    assert added == MASTER + '# BEGIN %s\n%s# END %s\n' % (MARKER, SERVICE, MARKER)
    assert read_block(added, MARKER) == SERVICE
    assert replace_block(added, MARKER, SERVICE) == added
    other = SERVICE.replace('relay-a', 'relay-b')
    replaced = replace_block(added, MARKER, other)
    assert replaced == MASTER + '# BEGIN %s\n%s# END %s\n' % (MARKER, other, MARKER) and read_block(replaced, MARKER) == other
    assert replace_block(replaced, MARKER, '') == MASTER and read_block(MASTER, MARKER) == ''


def test_lines_around_the_block_stay_where_they_are():
    text = 'before\n# BEGIN %s\nold\n# END %s\nafter\n' % (MARKER, MARKER)
    assert replace_block(text, MARKER, 'new\n') == 'before\nafter\n# BEGIN %s\nnew\n# END %s\n' % (MARKER, MARKER)
    assert replace_block(text, MARKER, 'new\n', first=True) == '# BEGIN %s\nnew\n# END %s\nbefore\nafter\n' % (MARKER, MARKER)
    # Another tool's block, or a marker line that is not ours whole, is never touched.
    foreign = '# BEGIN other\nx\n# END other\n# BEGIN %s (not quite)\n' % MARKER
    assert replace_block(foreign, MARKER, '') == foreign


def test_a_file_without_a_final_newline_or_without_the_end_marker():
    assert replace_block('last line', MARKER, SERVICE) == 'last line\n# BEGIN %s\n%s# END %s\n' % (MARKER, SERVICE, MARKER)
    assert read_block('# BEGIN %s\ndangling\n' % MARKER, MARKER) == ''
    assert replace_block(None, MARKER, 'root: ops@example.com\n', first=True) == \
        '# BEGIN %s\nroot: ops@example.com\n# END %s\n' % (MARKER, MARKER)


def test_a_begin_line_without_its_end_takes_nothing_away():
    text = 'a\n# BEGIN %s\nb\nc\n' % MARKER
    assert replace_block(text, MARKER, '') == text
    assert replace_block(text, MARKER, 'new\n') == text + '# BEGIN %s\nnew\n# END %s\n' % (MARKER, MARKER)


# ---- is Postfix running: master.pid in the queue directory -------------------------------------------

@pytest.fixture
def process_named():
    """Start a process whose name (/proc/PID/comm) is the given one; all are stopped afterwards."""
    started = []

    def start(name):
        proc = subprocess.Popen([sys.executable, '-c', 'import sys, time\nopen("/proc/self/comm", "w").write(sys.argv[1])\n'
                                 'print("ready", flush=True)\ntime.sleep(60)', name], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == 'ready'
        started.append(proc)
        return proc.pid
    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def write_pid(queue_directory, text):
    os.makedirs(os.path.join(queue_directory, 'pid'), exist_ok=True)
    with open(os.path.join(queue_directory, 'pid', 'master.pid'), 'w') as handle:
        handle.write(text)


def test_a_pid_file_naming_a_live_master_means_running(tmp_path, process_named):
    queue = str(tmp_path)
    # Postfix writes the pid right-aligned in a padded field.
    write_pid(queue, '%11d\n' % process_named('master'))
    assert master_running(queue)


@pytest.mark.parametrize('case', ['no pid file', 'another program', 'dead process', 'garbage'])
def test_anything_else_means_not_running(tmp_path, process_named, case):
    queue = str(tmp_path)
    if case == 'another program':
        write_pid(queue, '%d\n' % process_named('qmgr-lookalike'))
    elif case == 'dead process':
        proc = subprocess.Popen([sys.executable, '-c', 'pass'])
        proc.wait()
        write_pid(queue, '%d\n' % proc.pid)
    elif case == 'garbage':
        write_pid(queue, 'master\n')
    assert not master_running(queue)


class Commands(object):
    """What running() uses of PostfixCommands, answering as a Postfix with the given default."""

    def __init__(self, default, expanded=None):
        self.default, self.expanded, self.asked = default, expanded, []

    def defaults(self, *names):
        self.asked.append(('-d',) + names)
        return {'queue_directory': self.default}

    def _argv(self, *args):
        return list(args)

    def run(self, argv):
        self.asked.append(tuple(argv))
        return 0, self.expanded + '\n', ''


@pytest.mark.parametrize('main_cf, expanded, looked_in, asked', [
    ('', None, '/var/spool/postfix', [('-d', 'queue_directory')]),
    ('queue_directory = /srv/queue\n', None, '/srv/queue', []),
    ('queue_directory = ${spool}/postfix-b\n', '/var/spool/postfix-b', '/var/spool/postfix-b',
     [('postconf', '-x', '-h', 'queue_directory')]),
])
def test_running_looks_in_the_queue_directory_of_the_live_main_cf(monkeypatch, main_cf, expanded, looked_in, asked):
    change = _config.ConfigChange.__new__(_config.ConfigChange)
    change.main_before, change.postfix = main_cf, Commands('/var/spool/postfix', expanded)
    looked = []
    monkeypatch.setattr(_config, 'master_running', lambda queue: looked.append(queue) or True)
    assert change.running() and looked == [looked_in] and change.postfix.asked == asked


def test_a_plain_file_is_planned_by_content_and_mode(tmp_path):
    path = str(tmp_path / 'relay_header_checks')
    missing = _config.PlainFile(path, 'a\n', '0644', False)
    assert missing.rewrite and missing.changed and not missing.attributes_differ
    with open(path, 'w') as handle:
        handle.write('a\n')
    os.chmod(path, 0o600)
    plain = _config.PlainFile(path, 'a\n', '0644', False)
    assert not plain.rewrite and plain.attributes_differ and plain.changed
    os.chmod(path, 0o644)
    assert not _config.PlainFile(path, 'a\n', '0644', False).changed
    assert _config.PlainFile(path, 'b\n', '0644', False).rewrite


def test_a_plain_file_with_an_owner_wants_that_owner_and_the_group_of_its_name(tmp_path):
    path = str(tmp_path / 'guard.nft')
    with open(path, 'w') as handle:
        handle.write('table\n')
    os.chmod(path, 0o644)
    stat = os.stat(path)
    owner, group = pwd.getpwuid(stat.st_uid).pw_name, grp.getgrgid(stat.st_gid).gr_name
    other = _config.PlainFile(path, 'table\n', '0644', False, owner='smarthost-no-such-user')
    assert not other.rewrite and other.attributes_differ and other.changed
    if owner != group:
        pytest.skip('the test user %s has the primary group %s, not one of its name' % (owner, group))
    assert not _config.PlainFile(path, 'table\n', '0644', False, owner=owner).changed
