# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run postfix_config end to end against the real postconf and postmap in a private config dir.

Only the reload (a running Postfix) is replaced: the `postfix` fixture records those commands.
"""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from ansible_collections.smarthost.postfix.plugins.module_utils import _config
from ansible_collections.smarthost.postfix.plugins.modules import postfix_config
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules.postmap_run import POSTMAP, query, run_main

pytestmark = pytest.mark.skipif(not os.path.exists(POSTMAP), reason='postfix is not installed')

# The lines of Debian's and EL's master.cf that matter here: tlsproxy and a service with
# continuation lines ship commented out.
MASTER_CF = """\
smtp      inet  n       -       y       -       -       smtpd
#tlsproxy  unix  -       -       y       -       0       tlsproxy
#submission inet n       -       y       -       -       smtpd
#  -o syslog_name=postfix/submission
#  -o smtpd_tls_security_level=encrypt
# A comment right after the block stays a comment.
#
#maildrop  unix  -       n       n       -       -       pipe
#  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}
pickup    unix  n       -       y       60      1       pickup
"""

PASSWORD = 'relay-a:Pa ss:w0rd-config-41d9'
UPSTREAM = '[smtp-a.example.net]:587'
MAIN_CF = 'compatibility_level = 3.6\nmynetworks = 127.0.0.0/8 [::1]/128\nmydomain = example.com\n'


@pytest.fixture
def directory(config_dir):
    with open(os.path.join(config_dir, 'master.cf'), 'w') as handle:
        handle.write(MASTER_CF)
    return config_dir


@pytest.fixture
def run(set_module_args, capsys, directory, postfix):
    def _run(check_mode=False, diff=False, **args):
        args.setdefault('config_directory', directory)
        args.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
        return run_main(set_module_args, capsys, args, main=postfix_config.main)[0]
    return _run


def read(directory, name):
    with open(os.path.join(directory, name)) as handle:
        return handle.read()


def leftovers(directory):
    return [name for name in os.listdir(directory) if name not in ('main.cf', 'master.cf')]


def test_writes_main_cf_reloads_and_is_idempotent(run, directory, postfix):
    result = run(main_cf=MAIN_CF, diff=True)
    assert result['changed'] and result['main_cf_changed'] and result['reloaded']
    assert result['enabled_services'] == []
    assert read(directory, 'main.cf') == MAIN_CF
    assert postfix['commands'] == ['status', 'reload']
    assert [item['after'] for item in result['diff']] == [MAIN_CF]
    assert result['diff'][0]['before'] == 'compatibility_level = 3.6\n'
    # Dated back, so that the reload reads it at once.
    assert time.time() - os.stat(os.path.join(directory, 'main.cf')).st_mtime >= 1.5
    assert leftovers(directory) == []

    result = run(main_cf=MAIN_CF)
    assert not result['changed'] and not result['reloaded']
    assert postfix['commands'] == ['status', 'reload']


def test_check_mode_checks_but_writes_nothing(run, directory, postfix):
    result = run(main_cf=MAIN_CF, master_cf_enable=['tlsproxy/unix'], check_mode=True, diff=True)
    assert result['changed'] and result['enabled_services'] == ['tlsproxy/unix'] and not result['reloaded']
    assert read(directory, 'main.cf') == 'compatibility_level = 3.6\n'
    assert read(directory, 'master.cf') == MASTER_CF
    assert [item['before_header'] for item in result['diff']] == [
        os.path.join(directory, 'master.cf'), os.path.join(directory, 'main.cf')]
    assert postfix['commands'] == []

    result = run(main_cf=MAIN_CF + 'no_such_parameter = 1\n', check_mode=True)
    assert result['failed'] and 'unused parameter: no_such_parameter=1' in result['msg']


@pytest.mark.parametrize('main_cf, reason', [
    (MAIN_CF + 'smtp_no_such_setting = yes\n', 'unused parameter: smtp_no_such_setting=yes'),
    (MAIN_CF.replace('example.com', 'bad..domain.test') + 'myhostname = relay.example.com\n', 'parameter mydomain: bad parameter value: bad..domain.test'),
    (MAIN_CF.replace('[::1]/128', '10.89.77.0/33'), 'postmap: warning: cidr map'),
    (MAIN_CF + 'mydomain = example.net\n', 'overriding earlier entry: mydomain=example.com'),
])
def test_refused_configuration_changes_nothing(run, directory, postfix, main_cf, reason):
    result = run(main_cf=main_cf, master_cf_enable=['tlsproxy/unix'])
    assert result['failed']
    assert result['msg'].startswith('Postfix refuses the new main.cf: ') and reason in result['msg']
    assert '.staging.' not in result['msg']
    assert read(directory, 'main.cf') == 'compatibility_level = 3.6\n'
    assert read(directory, 'master.cf') == MASTER_CF
    assert postfix['commands'] == [] and leftovers(directory) == []


def test_mynetworks_tables_and_ipv6_pass(run, directory):
    main_cf = MAIN_CF.replace('[::1]/128', '[::1]/128, [2001:db8::]/32 hash:/etc/postfix/network_table /etc/postfix/networks')
    assert _config.mynetworks_table('127.0.0.0/8, [::1]/128 hash:/x /y') == '127.0.0.0/8 ok\n[::1]/128 ok\n'
    assert run(main_cf=main_cf)['main_cf_changed']


def test_enables_a_commented_service_with_its_continuation_lines(run, directory, postfix):
    result = run(master_cf_enable=['tlsproxy/unix', 'submission/inet', 'smtp/inet', 'maildrop/unix'], diff=True)
    assert result['changed'] and result['enabled_services'] == ['tlsproxy/unix', 'submission/inet', 'maildrop/unix']
    assert not result['main_cf_changed'] and result['reloaded']
    assert read(directory, 'master.cf') == MASTER_CF.replace('#tlsproxy', 'tlsproxy').replace(
        '#submission', 'submission').replace('#  -o', '  -o').replace('#maildrop', 'maildrop').replace('#  flags', '  flags')
    assert '\n# A comment right after the block stays a comment.\n' in read(directory, 'master.cf')
    assert [item['before_header'] for item in result['diff']] == [os.path.join(directory, 'master.cf')]

    result = run(master_cf_enable=['tlsproxy/unix'])
    assert not result['changed'] and result['enabled_services'] == []


@pytest.mark.parametrize('spec, message', [
    ('lmtp/unix', 'master.cf has no lmtp/unix service, enabled or commented out'),
    ('tlsproxy/inet', 'master.cf has no tlsproxy/inet service'),
    ('tlsproxy', 'is not NAME/TYPE'),
    ('tls proxy/unix', 'is not NAME/TYPE'),
    ('tlsproxy/socket', 'is not NAME/TYPE'),
])
def test_bad_services_fail_before_writing(run, directory, spec, message):
    result = run(main_cf=MAIN_CF, master_cf_enable=[spec])
    assert result['failed'] and message in result['msg']
    assert read(directory, 'main.cf') == 'compatibility_level = 3.6\n'


def test_validate_sees_the_staging_copy_and_can_refuse(run, directory):
    check = "/bin/sh -c 'grep -q ^tlsproxy \"$1/master.cf\" && grep -q example.com \"$1/main.cf\"' check %s"
    assert run(main_cf=MAIN_CF, master_cf_enable=['tlsproxy/unix'], validate=check)['changed']

    refuse = "/bin/sh -c 'echo CA file missing >&2; exit 3' check %s"
    result = run(main_cf=MAIN_CF + 'myhostname = relay.example.com\n', validate=refuse)
    assert result['failed']
    assert result['msg'] == 'validate refused the new configuration (exit status 3): CA file missing'
    assert read(directory, 'main.cf') == MAIN_CF and leftovers(directory) == []

    result = run(main_cf=MAIN_CF + 'myhostname = relay.example.com\n', validate='/bin/true')
    assert result['failed'] and 'validate must contain %s' in result['msg']


@pytest.mark.parametrize('reload, change, running, commands, reloaded', [
    ('never', True, True, [], False),
    ('changed', False, True, [], False),
    ('always', False, True, ['status', 'reload'], True),
    ('changed', True, False, ['status'], False),
])
def test_reload(run, postfix, reload, change, running, commands, reloaded):
    postfix['running'] = running
    result = run(main_cf=MAIN_CF if change else 'compatibility_level = 3.6\n', reload=reload)
    assert postfix['commands'] == commands
    assert result['reloaded'] == reloaded and result['changed'] == (change or reloaded)


def test_existing_main_cf_keeps_its_mode_and_a_new_one_is_0644(run, directory):
    path = os.path.join(directory, 'main.cf')
    os.chmod(path, 0o640)
    run(main_cf=MAIN_CF)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640

    os.remove(path)
    run(main_cf=MAIN_CF)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_missing_files_and_directory(run, directory, tmp_path):
    os.remove(os.path.join(directory, 'main.cf'))
    result = run(master_cf_enable=['tlsproxy/unix'])
    assert result['failed'] and 'main.cf does not exist and main_cf is not given' in result['msg']

    os.remove(os.path.join(directory, 'master.cf'))
    for enable in ([], ['tlsproxy/unix']):
        result = run(main_cf=MAIN_CF, master_cf_enable=enable)
        assert result['failed'] and result['msg'] == '%s/master.cf does not exist: install postfix' % directory

    result = run(main_cf=MAIN_CF, config_directory=str(tmp_path / 'nowhere'))
    assert result['failed'] and 'does not exist: install postfix' in result['msg']


def tables(directory, password=PASSWORD):
    return [{'path': os.path.join(directory, 'sasl_passwd'), 'entries': {UPSTREAM: password}, 'secret': True, 'exclusive': True},
            {'path': os.path.join(directory, 'tls_policy'), 'entries': {UPSTREAM: 'secure'}, 'mode': '0644'}]


def test_tables_and_main_cf_in_one_run(run, directory, postfix):
    result = run(tables=tables(directory), type='hash', main_cf=MAIN_CF, master_cf_enable=['tlsproxy/unix'], diff=True)
    assert result['changed'] and result['main_cf_changed'] and result['reloaded']
    assert [table['changed_keys'] for table in result['tables']] == [[UPSTREAM], [UPSTREAM]]
    assert query(directory, os.path.join(directory, 'sasl_passwd'), UPSTREAM) == PASSWORD
    assert query(directory, os.path.join(directory, 'tls_policy'), UPSTREAM) == 'secure'
    assert stat.S_IMODE(os.stat(os.path.join(directory, 'sasl_passwd.db')).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(directory, 'tls_policy.db')).st_mode) == 0o644
    # Tables first, then the two files in the order they are written.
    assert [os.path.basename(item['before_header']) for item in result['diff']] == [
        'sasl_passwd', 'tls_policy', 'master.cf', 'main.cf']
    assert 'Pa ss' not in json.dumps(result)
    assert postfix['commands'] == ['status', 'reload']

    result = run(tables=tables(directory), type='hash', main_cf=MAIN_CF, master_cf_enable=['tlsproxy/unix'])
    assert not result['changed'] and not result['reloaded']

    # A new password alone still reloads.
    result = run(tables=tables(directory, 'relay-a:new secret'), type='hash', main_cf=MAIN_CF, check_mode=True, diff=True)
    assert result['changed'] and not result['main_cf_changed'] and not result['reloaded']
    assert '********' in result['diff'][0]['after'] and 'new secret' not in json.dumps(result)
    assert query(directory, os.path.join(directory, 'sasl_passwd'), UPSTREAM) == PASSWORD
    result = run(tables=tables(directory, 'relay-a:new secret'), type='hash', main_cf=MAIN_CF)
    assert result['changed'] and result['reloaded'] and postfix['commands'][-2:] == ['status', 'reload']


@pytest.mark.parametrize('bad', ['table', 'main_cf'])
def test_nothing_is_written_when_a_table_or_main_cf_is_refused(run, directory, postfix, bad):
    bad_tables = tables(directory)
    if bad == 'table':
        bad_tables[1]['entries'] = {'bad key': 'secure'}
    result = run(tables=bad_tables, type='hash', master_cf_enable=['tlsproxy/unix'],
                 main_cf=MAIN_CF + ('no_such_parameter = 1\n' if bad == 'main_cf' else ''))
    assert result['failed']
    assert ("tls_policy: invalid entries: key 'bad key'" if bad == 'table' else 'unused parameter') in result['msg']
    assert leftovers(directory) == [] and postfix['commands'] == []
    assert read(directory, 'master.cf') == MASTER_CF


def test_tables_without_a_main_cf_are_built_with_the_new_one(run, directory):
    """A Postfix installed with "No configuration" has no main.cf: postmap reads the checked new one."""
    os.remove(os.path.join(directory, 'main.cf'))
    result = run(tables=tables(directory), main_cf=MAIN_CF)
    assert result['changed'] and result['main_cf_changed']
    assert read(directory, 'main.cf') == MAIN_CF
    assert query(directory, os.path.join(directory, 'sasl_passwd'), UPSTREAM) == PASSWORD
    assert not [name for name in leftovers(directory) if name.startswith('.')]


def test_tables_without_a_main_cf_are_not_built_when_it_is_refused(run, directory):
    os.remove(os.path.join(directory, 'main.cf'))
    result = run(tables=tables(directory), main_cf=MAIN_CF + 'smtp_no_such_setting = yes\n')
    assert result['failed'] and 'unused parameter: smtp_no_such_setting=yes' in result['msg']
    assert leftovers(directory) == [] and not os.path.exists(os.path.join(directory, 'main.cf'))
