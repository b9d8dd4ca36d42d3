# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""relay_config end to end: the real postconf, postmap and postalias on a private config directory,
real SMTP upstreams on loopback for the preflight. Only the running Postfix (the `postfix` command) and,
in the package tests, the package manager are replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat

import pytest
import yaml

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model
from ansible_collections.smarthost.postfix.plugins.modules import relay_config
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules import smtp_probe_servers as servers
from ansible_collections.smarthost.postfix.tests.unit.plugins.modules.postmap_run import POSTMAP, query, run_main

pytestmark = [pytest.mark.skipif(not os.path.exists(POSTMAP), reason='postfix is not installed'),
              pytest.mark.filterwarnings('ignore:Requiring AUTH while not requiring TLS')]

# The distribution's master.cf (tlsproxy commented out), as a fresh install has it.
DISTRIBUTION_MASTER_CF = '/etc/postfix/master.cf'
PASSWORD_A = 'A-pass:with spaces-7f3e'
PASSWORD_B = 'B-pass:other-91c2'


@pytest.fixture(scope='module')
def upstreams(pki):
    """Two authenticating STARTTLS upstreams on loopback, A and B, each with its own account."""
    started = [servers.start_smtpd(tls_context=pki.server_context(), require_starttls=True, auth_required=True,
                                   authenticator=servers.password_checker(name, password))
               for name, password in (('relay-a', PASSWORD_A), ('relay-b', PASSWORD_B))]
    yield [controller.port for controller in started]
    for controller in started:
        controller.stop()


@pytest.fixture
def host(tmp_path):
    """A config directory as a Postfix installed with "No configuration" leaves it, and an aliases file."""
    directory = tmp_path / 'postfix'
    directory.mkdir()
    shutil.copy(DISTRIBUTION_MASTER_CF, str(directory / 'master.cf'))
    aliases = tmp_path / 'aliases'
    aliases.write_text('postmaster: root\n')
    return dict(config_directory=str(directory), aliases_file=str(aliases))


@pytest.fixture
def relay(set_module_args, capsys, host, postfix, pki, upstreams):
    """Run the module; returns (result, everything it printed)."""

    def _run(check_mode=False, diff=False, **args):
        args = dict(dict(host, field_prefix='relay_', tls_ca_file=pki.ca_file), **args)
        args.setdefault('upstreams', lab_upstreams(upstreams))
        args.update(_ansible_check_mode=check_mode, _ansible_diff=diff)
        return run_main(set_module_args, capsys, args, main=relay_config.main)

    return _run


def lab_upstreams(ports, password_a=PASSWORD_A):
    return [dict(host='localhost', port=ports[0], tls='verify', username='relay-a', password=password_a),
            dict(host='127.0.0.1', port=ports[1], tls='encrypt', username='relay-b', password=PASSWORD_B)]


def snapshot(host):
    """Name, mode and content digest of every file of the host: what 'nothing changed' means."""
    files = {}
    names = os.listdir(host['config_directory'])
    for path in [host['aliases_file']] + [os.path.join(host['config_directory'], name) for name in names]:
        with open(path, 'rb') as handle:
            files[path] = (stat.S_IMODE(os.stat(path).st_mode), hashlib.sha256(handle.read()).hexdigest())
    return files


def read(host, name):
    with open(os.path.join(host['config_directory'], name)) as handle:
        return handle.read()


def test_first_run_writes_everything_second_run_nothing(relay, host, postfix, upstreams):
    result, dummy = relay(root_forward='ops@example.com', sender_address='alerts@example.com')
    assert result['changed'] and result['main_cf_changed'] and result['enabled_services'] == ['tlsproxy/unix']
    assert result['preflight']['ran'] and [u['ok'] for u in result['preflight']['upstreams']] == [True, True]
    assert 'relayhost' in result['preflight']['reasons'] and 'relay_sasl_passwd' in result['preflight']['reasons']
    # No main.cf before: Postfix was not running, so nothing to reload.
    assert not result['running'] and not result['reloaded'] and postfix['commands'] == []
    main_cf = read(host, 'main.cf')
    assert 'relayhost = [localhost]:%d\n' % upstreams[0] in main_cf
    assert 'smtp_fallback_relay = [127.0.0.1]:%d\n' % upstreams[1] in main_cf
    directory = host['config_directory']
    sasl = os.path.join(directory, 'relay_sasl_passwd')
    assert query(directory, sasl, '[localhost]:%d' % upstreams[0]) == 'relay-a:' + PASSWORD_A
    assert query(directory, sasl, '[127.0.0.1]:%d' % upstreams[1]) == 'relay-b:' + PASSWORD_B
    for name, mode in (('relay_sasl_passwd', 0o600), ('relay_sasl_passwd.db', 0o600), ('relay_tls_policy.db', 0o644),
                       ('relay_generic.db', 0o644), ('main.cf', 0o644)):
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == mode, name
    assert '\ntlsproxy  unix' in read(host, 'master.cf')
    with open(host['aliases_file']) as handle:
        assert handle.read().startswith('# BEGIN %s\nroot: ops@example.com\n' % model.ALIASES_MARKER)
    assert os.path.exists(host['aliases_file'] + '.db')
    assert not [name for name in os.listdir(directory) if name.startswith('.')]

    before = snapshot(host)
    result, dummy = relay(root_forward='ops@example.com', sender_address='alerts@example.com')
    assert not result['changed'] and not result['preflight']['ran'] and not result['reloaded']
    assert result['running'] and not result['restart_needed']
    assert snapshot(host) == before
    assert postfix['commands'] == ['status']


def test_a_new_password_is_probed_written_and_reloaded(relay, host, postfix, upstreams):
    relay()
    postfix['commands'][:] = []
    result, dummy = relay(upstreams=lab_upstreams(upstreams, password_a='wrong password'), diff=True)
    assert result['failed'] and result['msg'].startswith(
        'Preflight: primary upstream relay_upstreams[0] [localhost]:%d failed: authentication rejected for user relay-a: 535'
        % upstreams[0])
    assert 'The live configuration was not changed' in result['msg']
    sasl = os.path.join(host['config_directory'], 'relay_sasl_passwd')
    assert query(host['config_directory'], sasl, '[localhost]:%d' % upstreams[0]) == 'relay-a:' + PASSWORD_A
    assert postfix['commands'] == ['status']

    result, dummy = relay(upstreams=lab_upstreams(upstreams, password_a='wrong password'), preflight=False, diff=True)
    assert result['changed'] and result['reloaded'] and not result['preflight']['ran']
    assert [diff['after'] for diff in result['diff']] == ['[localhost]:%d ******** (changed)\n[127.0.0.1]:%d ********\n'
                                                          % tuple(upstreams)]
    assert query(host['config_directory'], sasl, '[localhost]:%d' % upstreams[0]) == 'relay-a:wrong password'


def test_a_failing_fallback_is_a_warning(relay, upstreams):
    ups = lab_upstreams(upstreams)
    ups[1]['port'] = servers.closed_port()
    result, dummy = relay(upstreams=ups)
    assert result['changed'] and not result.get('failed')
    assert result['preflight']['upstreams'][1] == dict(nexthop='[127.0.0.1]:%d' % ups[1]['port'], ok=False,
                                                       msg='connection refused by 127.0.0.1:%d' % ups[1]['port'])
    # ansible-core 2.19 returns warnings as structured events, earlier releases as strings.
    warnings = [w['event']['msg'] if isinstance(w, dict) else w for w in result['warnings']]
    assert warnings == ['preflight: fallback upstream relay_upstreams[1] [127.0.0.1]:%d failed: '
                        'connection refused by 127.0.0.1:%d' % (ups[1]['port'], ups[1]['port'])]


def test_check_mode_checks_probes_and_writes_nothing(relay, host, postfix):
    before = snapshot(host)
    result, output = relay(check_mode=True, diff=True, root_forward='ops@example.com')
    assert result['changed'] and result['main_cf_changed'] and result['preflight']['ran']
    assert snapshot(host) == before and postfix['commands'] == []
    headers = [diff['before_header'] for diff in result['diff']]
    assert headers[-1] == host['aliases_file'] and headers[-2].endswith('/main.cf')
    assert PASSWORD_A not in output and PASSWORD_B not in output


def test_no_secret_in_any_output(relay, upstreams):
    outputs = [relay(diff=True)[1], relay(diff=True, upstreams=lab_upstreams(upstreams, 'Secret-changed x'))[1],
               relay(upstreams=lab_upstreams(upstreams, 'Secret-changed x\nline'))[1],
               relay(upstreams=lab_upstreams(upstreams, 'Secret-changed x'), extra_parameters={'no_such_name': 1})[1]]
    for output in outputs:
        for secret in (PASSWORD_A, PASSWORD_B, 'Secret-changed', 'A-pass', 'with spaces-7f3e', 'other-91c2'):
            assert secret not in output
    assert json.loads(outputs[2])['msg'] == \
        'Invalid relay input: relay_upstreams[0].password: must not contain a control character (U+000A)'


@pytest.mark.parametrize('args, fragment', [
    (dict(inet_interfaces=['127.0.0.1', '::1%0\nrelay_domains = static:all']), 'relay_inet_interfaces[1]: must not contain'),
    (dict(extra_parameters={'smtp_fallback_relay\n': '[evil.example]:25'}), 'is not a Postfix parameter name'),
    (dict(extra_parameters={'relay_domains': 'static:all'}), 'use relay_mynetworks instead'),
    (dict(mynetworks=['0.0.0.0/0']), 'an open relay'),
    (dict(root_forward='|/usr/bin/logger@example.com'), 'relay_root_forward:'),
    (dict(extra_parameters={'smtp_no_such_setting': 'yes'}), 'Postfix refuses the new main.cf: '),
    (dict(extra_parameters={'mydomain': 'bad..domain.test'}), 'parameter mydomain: bad parameter value: bad..domain.test'),
    (dict(tls_ca_file='/nonexistent/ca.pem'), 'relay_tls_ca_file: /nonexistent/ca.pem is not readable'),
])
def test_bad_input_changes_nothing(relay, host, postfix, args, fragment):
    relay()
    before = snapshot(host)
    postfix['commands'][:] = []
    result, dummy = relay(**args)
    assert result['failed'] and fragment in result['msg']
    assert snapshot(host) == before
    assert postfix['commands'] in ([], ['status'])


def test_port_as_string_is_accepted(relay, upstreams):
    ups = lab_upstreams(upstreams)
    ups[0]['port'] = str(ups[0]['port'])
    assert relay(upstreams=ups)[0]['changed']


def test_absent_goes_local_only_and_removes_only_the_relays_files(relay, host, postfix):
    directory = host['config_directory']
    relay(sender_address='alerts@example.com', root_forward='ops@example.com')
    for name in ('relay_preflight.sha256', 'relay_recipients'):
        with open(os.path.join(directory, name), 'w') as handle:
            handle.write('kept\n' if name == 'relay_recipients' else '0' * 64)
    result, dummy = relay(state='absent', upstreams=[])
    assert result['changed'] and result['reloaded']
    assert [os.path.basename(path) for path in result['removed']] == [
        'relay_generic', 'relay_generic.db', 'relay_preflight.sha256', 'relay_sasl_passwd', 'relay_sasl_passwd.db',
        'relay_tls_policy', 'relay_tls_policy.db']
    assert sorted(os.listdir(directory)) == ['main.cf', 'master.cf', 'relay_recipients']
    main_cf = read(host, 'main.cf')
    assert 'relayhost' not in main_cf and 'inet_interfaces = loopback-only\n' in main_cf
    with open(host['aliases_file']) as handle:
        assert handle.read() == 'postmaster: root\n'
    before = snapshot(host)
    result, dummy = relay(state='absent', upstreams=[])
    assert not result['changed'] and snapshot(host) == before


def test_a_listener_change_asks_for_a_restart(relay):
    relay()
    result, dummy = relay(inet_interfaces='all')
    assert result['changed'] and result['restart_needed'] and result['reloaded']
    result, dummy = relay(inet_interfaces='all', extra_parameters={'delay_warning_time': '4h'})
    assert result['changed'] and not result['restart_needed']


def test_a_map_type_change_removes_the_old_maps(relay, host):
    relay()
    result, dummy = relay(map_type='btree')
    assert sorted(os.path.basename(path) for path in result['removed']) == []
    assert os.path.exists(os.path.join(host['config_directory'], 'relay_sasl_passwd.db'))
    assert 'btree:' in read(host, 'main.cf')


@pytest.fixture
def packages(monkeypatch):
    """The package manager: dpkg-query reports what `installed` holds; apt-get installs into it."""
    state = {'installed': {'postfix'}, 'commands': [], 'fail': False}
    real_run_command, real_get_bin_path = AnsibleModule.run_command, AnsibleModule.get_bin_path
    monkeypatch.setattr(AnsibleModule, 'get_bin_path', lambda self, name, *a, **kw: '/usr/bin/' + name
                        if name in ('dpkg-query', 'apt-get') else real_get_bin_path(self, name, *a, **kw))

    def run_command(self, args, **kwargs):
        name = os.path.basename(args[0])
        if name == 'dpkg-query':
            return 0, ''.join('installed %s\n' % p for p in args[3:] if p in state['installed']), ''
        if name == 'apt-get':
            state['commands'].append((args[1:], kwargs.get('environ_update')))
            if state['fail'] and 'install' in args:
                return 100, '', 'E: Unable to locate package libsasl2-modules\n'
            if 'install' in args:
                state['installed'].update(args[args.index('install') + 1:])
            return 0, '', ''
        return real_run_command(self, args, **kwargs)

    monkeypatch.setattr(AnsibleModule, 'run_command', run_command)
    return state


def test_missing_packages_are_installed_first(relay, packages):
    # The package of the chosen map type comes too (btree is built into Debian's Postfix; the name is made up).
    result, dummy = relay(packages=['postfix', 'libsasl2-modules'], map_type='btree',
                          map_type_packages={'btree': 'postfix-btree-test', 'cdb': 'postfix-cdb'})
    assert result['installed'] == ['libsasl2-modules', 'postfix-btree-test'] and result['changed']
    assert [command for command, environ in packages['commands']] == [
        ['-q', 'update'], relay_config.APT_OPTIONS + ['install', 'libsasl2-modules', 'postfix-btree-test']]
    assert packages['commands'][0][1]['DEBIAN_FRONTEND'] == 'noninteractive'


def test_check_mode_reports_the_installation_and_does_not_preview(relay, host, packages):
    before = snapshot(host)
    result, dummy = relay(check_mode=True, packages=['postfix', 'libsasl2-modules'])
    assert result['changed'] and result['installed'] == ['libsasl2-modules'] and packages['commands'] == []
    assert result['msg'] == 'libsasl2-modules not installed yet: check mode cannot preview the relay configuration'
    assert snapshot(host) == before


def test_a_failed_installation_says_what_apt_said(relay, host, packages):
    packages['fail'] = True
    result, dummy = relay(packages=['postfix', 'libsasl2-modules'])
    assert result['failed'] and result['msg'] == ('installing libsasl2-modules failed (apt-get exit status 100): '
                                                  'E: Unable to locate package libsasl2-modules')
    assert not os.path.exists(os.path.join(host['config_directory'], 'main.cf'))


def test_bad_input_fails_before_the_installation(relay, packages):
    result, dummy = relay(packages=['postfix', 'libsasl2-modules'], mynetworks=['10.0.0.0/33'])
    assert result['failed'] and result['msg'].startswith('Invalid relay input: relay_mynetworks[0]')
    assert packages['commands'] == []


# ---- what differs between operating systems: the role's vars/main.yml, on each OS family --------------

ROLE_VARS = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'relay', 'vars', 'main.yml')
OS_FACTS = {
    'debian12': dict(distribution='Debian', os_family='Debian', distribution_major_version='12'),
    'el9': dict(distribution='RedHat', os_family='RedHat', distribution_major_version='9'),
    'el10': dict(distribution='AlmaLinux', os_family='RedHat', distribution_major_version='10'),
    'suse': dict(distribution='SLES', os_family='Suse', distribution_major_version='15'),
}


def role_os_variables():
    with open(ROLE_VARS) as handle:
        return yaml.safe_load(handle)['__relay_os_variables']


class FakeModule(object):
    params = {'field_prefix': 'relay_'}


@pytest.fixture
def host_os(monkeypatch):
    from ansible.module_utils.facts.system import distribution

    def use(name):
        monkeypatch.setattr(distribution.DistributionFactCollector, 'collect', lambda self, module=None, **kw: OS_FACTS[name])
    return use


@pytest.mark.parametrize('name, packages, ca_file, map_type, cache', [
    ('debian12', ['postfix', 'libsasl2-modules'], '/etc/ssl/certs/ca-certificates.crt', 'hash', 'btree'),
    ('el9', ['postfix', 'cyrus-sasl-plain'], '/etc/pki/tls/certs/ca-bundle.crt', 'hash', 'btree'),
    ('el10', ['postfix', 'cyrus-sasl-plain'], '/etc/pki/tls/certs/ca-bundle.crt', 'lmdb', 'lmdb'),
])
def test_the_role_variables_of_each_os(host_os, name, packages, ca_file, map_type, cache):
    host_os(name)
    entry = relay_config.os_entry(FakeModule(), role_os_variables())
    assert (entry['packages'], entry['tls_ca_file'], entry['map_type'], entry['session_cache_type']) == \
        (packages, ca_file, map_type, cache)
    # The main.cf the relay renders there (Postfix 3.5 on EL9 tops out at compatibility level 2).
    version = {'debian12': '3.7.11', 'el9': '3.5.25', 'el10': '3.8.5'}[name]
    relay = model.load(dict(upstreams=[dict(host='smtp-a.example.net', tls='verify', username='u', password='p')],
                            tls_ca_file=entry['tls_ca_file'], map_type=entry['map_type'],
                            session_cache_type=entry['session_cache_type']))
    parameters = relay.wanted(model.Host(version, 'relay.example.com')).parameters
    assert parameters['compatibility_level'] == ('2' if name == 'el9' else '3.6')
    assert parameters['default_database_type'] == map_type
    assert parameters['alias_maps'] == '%s:/etc/aliases' % map_type
    assert parameters['smtp_sasl_password_maps'] == '%s:/etc/postfix/relay_sasl_passwd' % map_type
    assert parameters['smtp_tls_session_cache_database'] == '%s:${data_directory}/smtp_scache' % cache
    assert parameters['smtp_tls_CAfile'] == ca_file


def test_an_os_without_variables_fails_before_anything_changes(relay, host, host_os, packages):
    host_os('suse')
    before = snapshot(host)
    result, dummy = relay(os_variables=role_os_variables())
    assert result['failed'] and result['msg'] == ('relay_os_variables has no entry for this OS (SLES 15, os_family Suse); '
                                                  'entries: Debian, RedHat, RedHat-10')
    assert snapshot(host) == before and packages['commands'] == []


def test_the_os_entry_fills_what_the_input_leaves_unset(relay, host, host_os, packages):
    host_os('debian12')
    # No probe here: the lab upstreams' CA is not the system bundle this case ends up with.
    result, dummy = relay(os_variables=role_os_variables(), tls_ca_file=None, preflight=False)
    assert result['installed'] == ['libsasl2-modules']
    assert 'smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt\n' in read(host, 'main.cf')
