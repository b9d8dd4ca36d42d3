# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run the module end to end against the real postmap/postconf in a private config dir.

Only the error branches replace PostfixCommands.run or get_bin_path.
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils import _postfix as pf
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules.postmap_run import POSTMAP, query, run_main

pytestmark = pytest.mark.skipif(not os.path.exists(POSTMAP), reason='postfix is not installed')

PASSWORD = 'relay-a:Pa ss:w0rd-unit-7f3c'
OTHER_PASSWORD = 'relay-b:other secret:9d2e'
UPSTREAM = '[smtp-a.example.net]:587'


@pytest.fixture
def table(tmp_path):
    return str(tmp_path / 'sasl_passwd')


@pytest.fixture
def run_module(set_module_args, capsys, config_dir, table):
    """Run the module like Ansible does and return its JSON result and raw output."""
    def _run(check_mode=False, diff=False, **args):
        args.setdefault('path', table)
        args.setdefault('config_directory', config_dir)
        args.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
        return run_main(set_module_args, capsys, args)
    return _run


def builds(calls):
    return [argv for argv in calls if '-o' in argv]


def test_check_apply_check_apply(run_module, calls, config_dir, table):
    entries = {UPSTREAM: PASSWORD}

    result, dummy = run_module(check_mode=True, entries=entries, secret=True)
    assert result['changed'] and result['changed_keys'] == [UPSTREAM]
    assert not os.path.exists(table) and not os.path.exists(table + '.db')
    assert builds(calls) == []

    result, dummy = run_module(entries=entries, secret=True)
    assert result['changed']
    assert result['type'] == 'hash' and result['map_path'] == table + '.db' and result['path'] == table
    assert query(config_dir, table, UPSTREAM) == PASSWORD

    for check_mode in (True, False):
        del calls[:]
        result, dummy = run_module(check_mode=check_mode, entries=entries, secret=True)
        assert not result['changed'] and result['changed_keys'] == []
        # No-op: postconf for the default type and one postmap -s, nothing that writes.
        assert [argv[-2:] for argv in calls] == [['-h', 'default_database_type'], ['-s', 'hash:' + table]]


def test_files_are_private_by_default_and_keep_requested_mode(run_module, table):
    run_module(entries={'a': 'b'})
    assert stat.S_IMODE(os.stat(table).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(table + '.db').st_mode) == 0o600

    result, dummy = run_module(entries={'a': 'c'}, mode='0640', type='hash')
    assert result['changed']
    assert stat.S_IMODE(os.stat(table).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(table + '.db').st_mode) == 0o640

    before = os.stat(table + '.db').st_ino
    result, dummy = run_module(entries={'a': 'c'}, mode='0644', type='hash')
    assert result['changed'] and result['changed_keys'] == []
    assert os.stat(table + '.db').st_ino == before, 'a mode change must not rebuild the map'
    assert stat.S_IMODE(os.stat(table + '.db').st_mode) == 0o644


def test_secret_never_reaches_output_and_diff_is_masked(run_module):
    result, output = run_module(diff=True, entries={UPSTREAM: PASSWORD}, secret=True)
    assert PASSWORD not in output and 'Pa ss' not in output
    assert result['diff']['after'] == '%s ******** (changed)\n' % UPSTREAM

    result, output = run_module(diff=True, entries={UPSTREAM: OTHER_PASSWORD, '[b.example.com]:587': 'u:p-w'}, secret=True)
    assert result['changed'] and sorted(result['changed_keys']) == sorted([UPSTREAM, '[b.example.com]:587'])
    assert PASSWORD not in output and OTHER_PASSWORD not in output and 'p-w' not in output
    # Which entries change shows; what they change to does not.
    assert result['diff']['before'] == '%s ********\n' % UPSTREAM
    assert result['diff']['after'] == '%s ******** (changed)\n[b.example.com]:587 ******** (changed)\n' % UPSTREAM

    result, output = run_module(diff=True, entries={UPSTREAM: OTHER_PASSWORD, '[b.example.com]:587': 'u:p-w'}, secret=True)
    assert not result['changed']
    assert result['diff']['before'] == result['diff']['after']


def test_diff_without_secret_shows_values(run_module, table):
    with open(table, 'w') as source:
        source.write('# hand written\nold 1\n')
    result, dummy = run_module(diff=True, check_mode=True, entries={'new': 'relay:[mx.example.com]:25'}, exclusive=True)
    assert result['diff'] == {
        'before': '# hand written\nold 1\n', 'after': 'new relay:[mx.example.com]:25\n',
        'before_header': table, 'after_header': table,
    }
    assert sorted(result['changed_keys']) == ['new', 'old']


@pytest.mark.parametrize('damage', ['delete', 'corrupt', 'stale'])
def test_damaged_map_is_rebuilt_and_source_kept(run_module, calls, config_dir, table, damage):
    run_module(entries={UPSTREAM: PASSWORD})
    source_inode = os.stat(table).st_ino
    if damage == 'delete':
        os.unlink(table + '.db')
    elif damage == 'corrupt':
        with open(table + '.db', 'wb') as compiled:
            compiled.write(b'\0garbage' * 64)
    else:
        # A map built from other content, newer than its source: only its answers tell.
        other = table + '.other'
        with open(other, 'w') as source:
            source.write('%s wrong\n' % UPSTREAM)
        subprocess.run([POSTMAP, '-c', config_dir, 'hash:' + other], check=True)
        os.rename(other + '.db', table + '.db')

    result, dummy = run_module(check_mode=True, entries={UPSTREAM: PASSWORD})
    assert result['changed'] and result['changed_keys'] == [UPSTREAM]
    del calls[:]
    result, dummy = run_module(entries={UPSTREAM: PASSWORD})
    assert result['changed'] and len(builds(calls)) == 1
    assert os.stat(table).st_ino == source_inode, 'a matching source is not rewritten'
    assert query(config_dir, table, UPSTREAM) == PASSWORD
    result, dummy = run_module(entries={UPSTREAM: PASSWORD})
    assert not result['changed']


def test_map_older_than_source_is_rebuilt(run_module, table):
    run_module(entries={'a': 'b'})
    os.utime(table + '.db', (0, 0))
    assert run_module(entries={'a': 'b'})[0]['changed']
    assert not run_module(entries={'a': 'b'})[0]['changed']


def test_hand_edited_source_that_matches_is_left_alone(run_module, config_dir, table):
    text = '# managed elsewhere\n%s relay-a:Pa\n  ss:w0rd-unit-7f3c\n\nother x\n' % UPSTREAM
    with open(table, 'w') as source:
        source.write(text)
    subprocess.run([POSTMAP, '-c', config_dir, 'hash:' + table], check=True)
    os.chmod(table, 0o600)
    os.chmod(table + '.db', 0o600)
    result, dummy = run_module(entries={UPSTREAM: 'relay-a:Pa  ss:w0rd-unit-7f3c', 'other': 'x'}, exclusive=True)
    assert not result['changed']
    with open(table) as source:
        assert source.read() == text


def test_present_keeps_other_entries_exclusive_removes_them(run_module, config_dir, table):
    run_module(entries={'keep': 'k', 'Change': 'old'})
    result, dummy = run_module(entries={'change': 'new'})
    assert result['changed_keys'] == ['change']
    assert query(config_dir, table, 'keep') == 'k' and query(config_dir, table, 'CHANGE') == 'new'

    result, dummy = run_module(entries={'change': 'new'}, exclusive=True)
    assert result['changed_keys'] == ['keep']
    assert query(config_dir, table, 'keep') is None
    with open(table) as source:
        assert source.read() == 'change new\n'


def test_absent_removes_keys_case_insensitively_and_ignores_missing_file(run_module, config_dir, table):
    result, dummy = run_module(state='absent', entries={'x': None})
    assert not result['changed'] and not os.path.exists(table)

    run_module(entries={'Gone': 'g', 'stay': 's'})
    result, dummy = run_module(state='absent', entries={'GONE': None, 'never-there': None})
    assert result['changed'] and result['changed_keys'] == ['Gone']
    assert query(config_dir, table, 'gone') is None and query(config_dir, table, 'stay') == 's'
    assert not run_module(state='absent', entries={'GONE': None})[0]['changed']


def test_bad_entries_fail_without_touching_the_table(run_module, table):
    run_module(entries={UPSTREAM: PASSWORD})
    before = {path: (os.stat(path).st_mtime_ns, open(path, 'rb').read()) for path in (table, table + '.db')}
    bad_value = ' ' + OTHER_PASSWORD
    result, output = run_module(entries={UPSTREAM: bad_value, 'bad key': 'value-of-bad-key', 'Up': 'value-1', 'up': 'value-2'}, secret=True)
    assert result['failed']
    assert "value for key '%s'" % UPSTREAM in result['msg']
    assert "key 'bad key'" in result['msg']
    assert "keys 'Up' and 'up' differ only by case" in result['msg']
    assert OTHER_PASSWORD not in output
    assert before == {path: (os.stat(path).st_mtime_ns, open(path, 'rb').read()) for path in (table, table + '.db')}


def test_exclusive_with_absent_is_refused(run_module):
    result, dummy = run_module(state='absent', exclusive=True, entries={'a': None})
    assert result['failed'] and 'exclusive=true requires state=present' in result['msg']


def test_missing_config_directory_main_cf(run_module, tmp_path):
    result, dummy = run_module(config_directory=str(tmp_path), entries={'a': 'b'})
    assert result['failed'] and 'has no main.cf' in result['msg']


def test_missing_directory_is_reported(run_module, tmp_path):
    result, dummy = run_module(path=str(tmp_path / 'nowhere' / 'table'), entries={'a': 'b'})
    assert result['failed'] and 'does not exist' in result['msg']


def test_postmap_missing_says_install_postfix(run_module, monkeypatch):
    monkeypatch.setattr(AnsibleModule, 'get_bin_path', lambda self, *args, **kwargs: None)
    result, dummy = run_module(entries={'a': 'b'}, type='hash')
    assert result['failed'] and result['msg'] == 'postmap not found: install postfix'


def test_unsupported_type_lists_postconf_m(run_module, monkeypatch, table):
    def fake_run(self, argv, **kwargs):
        assert argv[-1] == '-m', 'nothing but postconf -m may run before the type is known to work'
        return 0, 'btree\ncidr\nhash\n', ''

    monkeypatch.setattr(pf.PostfixCommands, 'run', fake_run)
    result, dummy = run_module(entries={'a': 'b'}, type='lmdb')
    assert result['failed']
    assert 'lmdb is not supported' in result['msg'] and 'btree, cidr, hash' in result['msg']
    assert not os.path.exists(table)


def test_permission_denied_from_postmap_is_clear(run_module, monkeypatch, table):
    def fake_run(self, argv, **kwargs):
        if '-o' in argv:
            return 1, '', 'postmap: fatal: open %s.db: Permission denied\n' % argv[-1]
        return 0, 'hash\n', ''

    monkeypatch.setattr(pf.PostfixCommands, 'run', fake_run)
    result, dummy = run_module(entries={'a': PASSWORD}, type='hash', secret=True)
    assert result['failed'] and result['msg'].startswith('permission denied building ')
    assert not os.path.exists(table) and not os.path.exists(table + '.db')
    assert os.listdir(os.path.dirname(table)) == ['postfix'], 'temporary files are cleaned up'
