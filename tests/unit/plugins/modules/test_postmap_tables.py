# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The tables option: several maps in one module run, against the real postmap/postconf."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.smarthost.postfix.tests.unit.plugins.modules.postmap_run import POSTMAP, query, run_main

pytestmark = pytest.mark.skipif(not os.path.exists(POSTMAP), reason='postfix is not installed')

PASSWORD = 'relay-a:Pa ss:w0rd-tables-51c0'
UPSTREAM = '[smtp-a.example.net]:587'


@pytest.fixture
def paths(tmp_path):
    return {name: str(tmp_path / name) for name in ('sasl_passwd', 'tls_policy', 'generic')}


@pytest.fixture
def relay_tables(paths):
    """What the relay role passes: a secret 0600 map and two public 0644 ones."""
    return [
        {'path': paths['sasl_passwd'], 'entries': {UPSTREAM: PASSWORD}, 'secret': True, 'exclusive': True, 'mode': '0600'},
        {'path': paths['tls_policy'], 'entries': {UPSTREAM: 'encrypt'}, 'exclusive': True, 'mode': '0644'},
        {'path': paths['generic'], 'entries': {'root@relay.test': 'alerts@example.com'}, 'exclusive': True, 'mode': '0644'},
    ]


@pytest.fixture
def run_tables(set_module_args, capsys, config_dir):
    def _run(tables, check_mode=False, diff=False, **args):
        args.setdefault('config_directory', config_dir)
        args.update(tables=tables, _ansible_check_mode=check_mode, _ansible_diff=diff)
        return run_main(set_module_args, capsys, args)
    return _run


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_three_tables_in_one_run(run_tables, relay_tables, paths, calls, config_dir):
    result, dummy = run_tables(relay_tables, check_mode=True, type='hash')
    assert result['changed'] and [table['changed'] for table in result['tables']] == [True, True, True]
    assert not any(os.path.exists(path) for path in paths.values())

    del calls[:]
    result, dummy = run_tables(relay_tables, type='hash')
    assert result['changed'] and result['type'] == 'hash'
    assert [table['path'] for table in result['tables']] == [paths['sasl_passwd'], paths['tls_policy'], paths['generic']]
    assert [table['changed_keys'] for table in result['tables']] == [[UPSTREAM], [UPSTREAM], ['root@relay.test']]
    assert query(config_dir, paths['sasl_passwd'], UPSTREAM) == PASSWORD
    assert query(config_dir, paths['tls_policy'], UPSTREAM) == 'encrypt'
    assert query(config_dir, paths['generic'], 'root@relay.test') == 'alerts@example.com'
    # Each table keeps its own mode, on the source and on the compiled map.
    assert [mode_of(paths['sasl_passwd']), mode_of(paths['sasl_passwd'] + '.db')] == [0o600, 0o600]
    assert [mode_of(paths['tls_policy']), mode_of(paths['generic'] + '.db')] == [0o644, 0o644]
    # The supported types are asked once for all three builds.
    assert sum(1 for argv in calls if argv[-1] == '-m') == 1

    del calls[:]
    result, dummy = run_tables(relay_tables, type='hash')
    assert not result['changed'] and not any(table['changed'] for table in result['tables'])
    # A no-op reads each compiled map once and writes nothing.
    assert [argv[-2] for argv in calls] == ['-s', '-s', '-s']


def test_only_the_table_that_differs_is_rebuilt(run_tables, relay_tables, paths, config_dir):
    run_tables(relay_tables, type='hash')
    untouched = {name: os.stat(path + '.db').st_ino for name, path in paths.items()}
    relay_tables[1]['entries'] = {UPSTREAM: 'secure'}
    result, dummy = run_tables(relay_tables, type='hash')
    assert [table['changed'] for table in result['tables']] == [False, True, False]
    assert os.stat(paths['sasl_passwd'] + '.db').st_ino == untouched['sasl_passwd']
    assert os.stat(paths['generic'] + '.db').st_ino == untouched['generic']
    assert query(config_dir, paths['tls_policy'], UPSTREAM) == 'secure'


def test_diff_per_table_masks_only_the_secret_one(run_tables, relay_tables, paths):
    result, output = run_tables(relay_tables, diff=True, check_mode=True, type='hash')
    assert PASSWORD not in output and 'Pa ss' not in output
    assert [diff['after_header'] for diff in result['diff']] == [paths['sasl_passwd'], paths['tls_policy'], paths['generic']]
    assert result['diff'][0]['after'] == '%s ******** (changed)\n' % UPSTREAM
    assert result['diff'][1]['after'] == '%s encrypt\n' % UPSTREAM


def test_bad_entry_in_a_later_table_leaves_every_table_untouched(run_tables, relay_tables, paths):
    relay_tables[2]['entries'] = {'two words': 'x'}
    result, output = run_tables(relay_tables, type='hash')
    assert result['failed']
    assert result['msg'].startswith(paths['generic'] + ': invalid entries')
    assert not any(os.path.exists(path) for path in paths.values())
    assert PASSWORD not in output


def test_missing_directory_names_its_table(run_tables, relay_tables, paths, tmp_path):
    relay_tables[1]['path'] = str(tmp_path / 'nowhere' / 'tls_policy')
    result, dummy = run_tables(relay_tables, type='hash')
    assert result['failed'] and result['msg'].startswith(relay_tables[1]['path'] + ': directory ')
    assert not os.path.exists(paths['sasl_passwd'])


def test_top_level_file_attributes_are_the_tables_defaults(run_tables, paths):
    tables = [{'path': paths['tls_policy'], 'entries': {'a': 'b'}}, {'path': paths['generic'], 'entries': {'c': 'd'}, 'mode': '0644'}]
    run_tables(tables, mode='0640')
    assert mode_of(paths['tls_policy']) == 0o640 and mode_of(paths['tls_policy'] + '.db') == 0o640
    assert mode_of(paths['generic']) == 0o644


def test_state_absent_per_table(run_tables, paths, config_dir):
    run_tables([{'path': paths['generic'], 'entries': {'a': 'b', 'c': 'd'}}])
    result, dummy = run_tables([{'path': paths['generic'], 'entries': {'A': None}, 'state': 'absent'},
                                {'path': paths['tls_policy'], 'entries': {'x': None}, 'state': 'absent'}])
    assert [table['changed'] for table in result['tables']] == [True, False]
    assert query(config_dir, paths['generic'], 'a') is None and query(config_dir, paths['generic'], 'c') == 'd'
    assert not os.path.exists(paths['tls_policy'])


@pytest.mark.parametrize('extra, message', [
    ({'path': '/tmp/x'}, 'mutually exclusive'),
    ({'secret': True}, 'mutually exclusive'),
    ({'entries': {'a': 'b'}}, 'mutually exclusive'),
])
def test_tables_excludes_single_table_options(run_tables, paths, extra, message):
    result, dummy = run_tables([{'path': paths['generic'], 'entries': {'a': 'b'}}], **extra)
    assert result['failed'] and message in result['msg']
    assert not os.path.exists(paths['generic'])


def test_path_or_tables_is_required(set_module_args, capsys):
    result, dummy = run_main(set_module_args, capsys, {'entries': {'a': 'b'}})
    assert result['failed'] and 'one of the following is required: path, tables' in result['msg']
