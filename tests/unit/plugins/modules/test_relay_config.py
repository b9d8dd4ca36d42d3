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
import subprocess

import pytest
import yaml

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model
from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import SECRET_MASK
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
    # No main.cf before: Postfix was not running, so nothing to reload; the module starts it (no systemd here).
    assert result['started'] and result['running'] and not result['reloaded'] and postfix['commands'] == ['start']
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
    assert result['running'] and not result['restart_needed'] and not result['started'] and not result['restarted']
    assert snapshot(host) == before
    assert postfix['commands'] == ['start', 'status']


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
    assert result['preflight']['upstreams'][1] == dict(route=None, nexthop='[127.0.0.1]:%d' % ups[1]['port'], ok=False,
                                                       sni=None, msg='connection refused by 127.0.0.1:%d' % ups[1]['port'])
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


def test_a_listener_change_restarts_postfix(relay, postfix):
    relay()
    postfix['commands'][:] = []
    result, dummy = relay(inet_interfaces='all')
    assert result['changed'] and result['restart_needed'] and result['reloaded'] and result['restarted']
    # Without systemd, Postfix's own commands: the reload of the other settings, then stop and start.
    assert postfix['commands'] == ['status', 'status', 'reload', 'stop', 'start'] and postfix['running']
    result, dummy = relay(inet_interfaces='all', extra_parameters={'delay_warning_time': '4h'})
    assert result['changed'] and not result['restart_needed'] and not result['restarted']


def test_with_systemd_the_unit_is_enabled_started_and_restarted(relay, postfix):
    postfix.update(systemd=True, running=False, enabled=False)
    result, dummy = relay()
    assert (result['service_mgr'], result['started'], result['running'], result['enabled']) == ('systemd', True, True, True)
    assert postfix['commands'] == ['systemctl is-enabled', 'systemctl enable', 'systemctl start']
    postfix['commands'][:] = []
    result, dummy = relay(inet_interfaces='all')
    assert result['restarted'] and not result['started']
    assert postfix['commands'] == ['status', 'status', 'reload', 'systemctl is-enabled', 'systemctl restart']
    postfix['commands'][:] = []
    result, dummy = relay(inet_interfaces='all')
    assert not result['changed'] and postfix['commands'] == ['status', 'systemctl is-enabled']


def test_check_mode_says_what_the_service_would_do_and_does_nothing(relay, postfix):
    relay()
    postfix.update(systemd=True, running=False, enabled=False)
    postfix['commands'][:] = []
    result, dummy = relay(check_mode=True)
    assert result['changed'] and result['started'] and not result['running'] and not result['enabled']
    assert postfix['commands'] == ['status', 'systemctl is-enabled']


def test_service_false_leaves_starting_and_restarting_to_the_caller(relay, postfix):
    relay()
    postfix.update(systemd=True, running=True, enabled=False)
    postfix['commands'][:] = []
    result, dummy = relay(inet_interfaces='all', service=False)
    assert result['restart_needed'] and not result['restarted'] and not result['started'] and not result['enabled']
    assert 'systemctl enable' not in postfix['commands'] and 'systemctl restart' not in postfix['commands']


def test_a_failing_start_names_the_command_and_where_to_look(relay, postfix, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule

    postfix.update(systemd=True, running=False)
    fake = AnsibleModule.run_command

    def failing_start(self, args, **kwargs):
        if args[1:] == ['start', 'postfix']:
            return 1, '', 'Job for postfix.service failed because the control process exited with error code.\n'
        return fake(self, args, **kwargs)

    monkeypatch.setattr(AnsibleModule, 'run_command', failing_start)
    result, dummy = relay()
    assert result['failed'] and result['msg'] == (
        'systemctl start postfix failed (exit status 1): Job for postfix.service failed because the control process '
        'exited with error code.; the configuration is written, see journalctl -u postfix')


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
# The /etc/os-release of each OS (the fields the lookup reads, as those releases ship them).
OS_RELEASES = {
    'debian12': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
    'ubuntu24': 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n',
    'el9': 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.4"\nID="rhel"\nID_LIKE="fedora"\n',
    'rocky9': 'NAME="Rocky Linux"\nVERSION_ID="9.5"\nID="rocky"\nID_LIKE="rhel centos fedora"\n',
    'oracle9': 'NAME="Oracle Linux Server"\nVERSION_ID="9.4"\nID="ol"\nID_LIKE="fedora"\n',
    'el10': 'NAME="AlmaLinux"\nVERSION_ID="10.0"\nID="almalinux"\nID_LIKE="rhel centos fedora"\n',
    'suse': 'NAME="SLES"\nVERSION_ID="15.6"\nID="sles"\nID_LIKE="suse"\n',
}


def role_os_variables():
    with open(ROLE_VARS) as handle:
        return yaml.safe_load(handle)['__relay_os_variables']


class FakeModule(object):
    params = {'field_prefix': 'relay_'}


def release_of(tmp_path, name):
    """The distro library's view of a host whose /etc/os-release is the one of name."""
    root = tmp_path / ('root-' + name)
    (root / 'etc').mkdir(parents=True)
    (root / 'etc' / 'os-release').write_text(OS_RELEASES[name])
    return relay_config.host_release(str(root))


@pytest.fixture
def host_os(monkeypatch, tmp_path):
    def use(name):
        release = release_of(tmp_path, name)
        monkeypatch.setattr(relay_config, 'host_release', lambda: release)
    return use


@pytest.mark.parametrize('name, family', [
    ('debian12', 'Debian'), ('ubuntu24', 'Debian'), ('el9', 'RedHat'), ('rocky9', 'RedHat'), ('oracle9', 'RedHat'),
    ('el10', 'RedHat'),
])
def test_the_os_family_comes_from_os_release_id_and_id_like(tmp_path, name, family):
    table = {'Debian': {'map_type': 'debian-family'}, 'RedHat': {'map_type': 'redhat-family'},
             'RedHat-10': {'map_type': 'redhat-10'}}
    entry = relay_config.os_entry(FakeModule(), table, release_of(tmp_path, name))
    assert entry['map_type'] == ('redhat-10' if name == 'el10' else family.lower() + '-family')


def test_the_host_release_runs_no_command():
    release = relay_config.host_release()
    assert (release.include_lsb, release.include_uname, release.include_oslevel) == (False, False, False)


@pytest.mark.parametrize('name, packages, ca_file, map_type, cache', [
    ('debian12', ['postfix', 'libsasl2-modules'], '/etc/ssl/certs/ca-certificates.crt', 'hash', 'btree'),
    ('el9', ['postfix', 'cyrus-sasl-plain'], '/etc/pki/tls/certs/ca-bundle.crt', 'hash', 'btree'),
    ('el10', ['postfix', 'cyrus-sasl-plain'], '/etc/pki/tls/certs/ca-bundle.crt', 'lmdb', 'lmdb'),
])
def test_the_role_variables_of_each_os(tmp_path, name, packages, ca_file, map_type, cache):
    entry = relay_config.os_entry(FakeModule(), role_os_variables(), release_of(tmp_path, name))
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
    assert result['failed'] and result['msg'] == ('relay_os_variables has no entry for this OS (SLES 15, os-release ID sles, '
                                                  'ID_LIKE suse); entries: Debian, RedHat, RedHat-10')
    assert snapshot(host) == before and packages['commands'] == []


def test_the_os_entry_fills_what_the_input_leaves_unset(relay, host, host_os, packages):
    host_os('debian12')
    # No probe here: the lab upstreams' CA is not the system bundle this case ends up with.
    result, dummy = relay(os_variables=role_os_variables(), tls_ca_file=None, preflight=False)
    assert result['installed'] == ['libsasl2-modules']
    assert 'smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt\n' in read(host, 'main.cf')


# ---- routes ----------------------------------------------------------------------------------------------

def postconf(host, *args):
    """What the real postconf reads from the config directory (master.cf -o overrides with -P)."""
    result = subprocess.run([shutil.which('postconf') or '/usr/sbin/postconf', '-c', host['config_directory']] + list(args),
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and not result.stderr, result.stderr
    return result.stdout


def regexp_query(host, name, key):
    """The answer of a regexp table of the relay, from the real postmap."""
    path = os.path.join(host['config_directory'], name)
    result = subprocess.run([POSTMAP, '-c', host['config_directory'], '-q', key, 'regexp:' + path],
                            capture_output=True, text=True, check=False)
    assert not result.stderr, result.stderr
    return result.stdout.strip() if result.returncode == 0 else None


def routes(ports, password_b=PASSWORD_B):
    """Route alpha by sender to B (implicit TLS is not on these test servers: STARTTLS), route hub by domain to A
    without credentials."""
    return [dict(name='alpha', senders=['@alpha.example.com'], sender_address='relay@alpha.example.com',
                 rate_delay=1, upstreams=[dict(host='127.0.0.1', port=ports[1], username='relay-b', password=password_b)]),
            dict(name='hub', domains=['internal.example.com'], upstreams=[dict(host='localhost', port=ports[0], tls='may')])]


def test_routes_are_written_checked_by_postfix_and_idempotent(relay, host, postfix, upstreams):
    args = dict(upstreams=lab_upstreams(upstreams)[:1], routes=routes(upstreams), diff=True,
                sender_allowlist=['@alpha.example.com', 'client@example.com'], recipient_domains=['remote.test', 'internal.example.com'])
    result, output = relay(**args)
    assert result['changed'] and result['master_cf_changed'] and result['preflight']['ran']
    assert 'master.cf routes' in result['preflight']['reasons'] and 'relay_route_alpha_sasl' in result['preflight']['reasons']
    assert [(item['route'], item['nexthop'], item['ok'], item['sni']) for item in result['preflight']['upstreams']] == [
        (None, '[localhost]:%d' % upstreams[0], True, 'localhost'), ('alpha', '[127.0.0.1]:%d' % upstreams[1], True, None),
        ('hub', '[localhost]:%d' % upstreams[0], True, None)]
    directory = host['config_directory']
    # Postfix reads the routes' transports with their own maps; no credential of one is in another's map.
    services = postconf(host, '-P')
    assert 'relay-alpha/unix/smtp_sasl_password_maps = hash:%s/relay_route_alpha_sasl\n' % directory in services
    assert 'relay-alpha/unix/smtp_fallback_relay =\n' in services and 'relay-hub/unix/smtp_sasl_auth_enable = no\n' in services
    assert postconf(host, '-h', 'relay-alpha_destination_rate_delay') == '1s\n'
    assert query(directory, os.path.join(directory, 'relay_route_alpha_sasl'), '[127.0.0.1]:%d' % upstreams[1]) == \
        'relay-b:' + PASSWORD_B
    assert query(directory, os.path.join(directory, 'relay_sasl_passwd'), '[127.0.0.1]:%d' % upstreams[1]) is None
    assert query(directory, os.path.join(directory, 'relay_sender_routes'), 'relay@alpha.example.com') == \
        'relay-alpha:[127.0.0.1]:%d' % upstreams[1]
    assert query(directory, os.path.join(directory, 'relay_transport'), 'internal.example.com') == \
        'relay-hub:[localhost]:%d' % upstreams[0]
    assert query(directory, os.path.join(directory, 'relay_sender_canonical'), '@alpha.example.com') == 'relay@alpha.example.com'
    # The regexp tables answer as the tests of the model say, read by Postfix itself.
    assert regexp_query(host, 'relay_sender_allowlist', 'someone@alpha.example.com') == 'OK'
    assert regexp_query(host, 'relay_sender_allowlist', 'someone@sub.alpha.example.com') == \
        '554 5.7.1 Sender address not allowed on this relay'
    assert regexp_query(host, 'relay_recipient_domains', 'x@internal.example.com') == 'OK'
    assert regexp_query(host, 'relay_recipient_domains', 'x@elsewhere.test') == '554 5.7.1 Recipient domain not served by this relay'
    assert regexp_query(host, 'relay_header_checks', 'From: Someone <someone@alpha.example.com>') == \
        'REPLACE From: relay@alpha.example.com'
    assert regexp_query(host, 'relay_header_checks', 'From: Someone <someone@bravo.example.com>') is None
    for name, mode in (('relay_route_alpha_sasl', 0o600), ('relay_route_alpha_sasl.db', 0o600), ('relay_route_alpha_tls.db', 0o644),
                       ('relay_sender_allowlist', 0o644), ('relay_header_checks', 0o644)):
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == mode, name
    assert PASSWORD_A not in output and PASSWORD_B not in output
    assert '# BEGIN %s\nrelay-alpha unix' % model.MASTER_CF_MARKER in read(host, 'master.cf')

    before = snapshot(host)
    result, dummy = relay(**args)
    assert not result['changed'] and not result['preflight']['ran'] and not result['master_cf_changed']
    assert snapshot(host) == before

    # Without the hub route and the allowlists: its files, its block entry and the tables go; nothing else.
    result, dummy = relay(upstreams=lab_upstreams(upstreams)[:1], routes=routes(upstreams)[:1])
    assert sorted(os.path.basename(path) for path in result['removed']) == [
        'relay_recipient_domains', 'relay_route_hub_tls', 'relay_route_hub_tls.db', 'relay_sender_allowlist',
        'relay_transport', 'relay_transport.db']
    assert 'relay-hub' not in read(host, 'master.cf') and 'relay-alpha' in read(host, 'master.cf')
    result, dummy = relay(upstreams=lab_upstreams(upstreams)[:1])
    assert read(host, 'master.cf') == open(DISTRIBUTION_MASTER_CF).read().replace('#tlsproxy  unix', 'tlsproxy  unix')
    assert not [name for name in os.listdir(directory) if name.startswith(model.ROUTE_FILE_PREFIX)]


def test_a_failing_primary_of_a_route_stops_the_run(relay, host, upstreams):
    relay(upstreams=lab_upstreams(upstreams)[:1])
    before = snapshot(host)
    result, output = relay(upstreams=lab_upstreams(upstreams)[:1], routes=routes(upstreams, password_b='wrong password'))
    assert result['failed'] and result['msg'].startswith(
        'Preflight: primary upstream relay_routes[0].upstreams[0] [127.0.0.1]:%d failed: authentication rejected for user '
        'relay-b: 535' % upstreams[1])
    assert 'The live configuration was not changed' in result['msg'] and 'wrong password' not in output
    assert snapshot(host) == before


def test_the_preflight_uses_the_routes_mechanism_filter(relay, pki, upstreams):
    used = []

    def checker(server, session, envelope, mechanism, auth_data):
        used.append(mechanism)
        return servers.password_checker('relay-c', 'C pass')(server, session, envelope, mechanism, auth_data)

    server = servers.start_smtpd(tls_context=pki.server_context(), require_starttls=True, auth_required=True,
                                 authenticator=checker)
    try:
        route = dict(name='charlie', senders=['@charlie.example.com'], sasl_mechanisms=['LOGIN'],
                     upstreams=[dict(host='localhost', port=server.port, tls='verify', username='relay-c', password='C pass')])
        result, dummy = relay(upstreams=lab_upstreams(upstreams)[:1], routes=[route])
        assert result['changed'] and used == ['LOGIN']
        assert 'relay-charlie/unix/smtp_sasl_mechanism_filter = LOGIN' in postconf_output(result)
    finally:
        server.stop()


def postconf_output(result):
    directory = os.path.dirname(result['tables'][0]['path'])
    return subprocess.run([shutil.which('postconf') or '/usr/sbin/postconf', '-c', directory, '-P'],
                          capture_output=True, text=True, check=True).stdout


def test_a_client_certificate_is_checked_against_its_key_and_stays_private(relay, host, pki, upstreams):
    cert_file, key_file = pki.chain('relay.probe.test')
    with open(cert_file) as handle:
        cert = handle.read()
    with open(key_file) as handle:
        key = handle.read()
    with open(pki.chain('other.probe.test')[1]) as handle:
        other_key = handle.read()
    route = routes(upstreams)[0]
    relay(upstreams=lab_upstreams(upstreams)[:1])
    before = snapshot(host)
    result, output = relay(upstreams=lab_upstreams(upstreams)[:1], routes=[dict(route, tls_client_cert=cert, tls_client_key=other_key)])
    assert result['failed'] and result['msg'].startswith('relay_routes[0].tls_client_key: the key does not fit the certificate')
    assert snapshot(host) == before and not [name for name in os.listdir(host['config_directory']) if name.startswith('.')]
    key_body = [line for line in key.split('\n') if len(line) > 40]
    result, output = relay(upstreams=lab_upstreams(upstreams)[:1], routes=[dict(route, tls_client_cert=cert, tls_client_key=key)],
                           diff=True)
    assert result['changed'] and not [line for line in key_body + other_key.split('\n') if len(line) > 40 and line in output]
    directory = host['config_directory']
    for name in ('relay_route_alpha_client.crt', 'relay_route_alpha_client.key'):
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600
    assert read(host, 'relay_route_alpha_client.key') == key
    assert [diff['after'] for diff in result['diff'] if diff['after_header'].endswith('client.key')] == ['******** (changed)\n']
    assert 'relay-alpha/unix/smtp_tls_key_file = %s/relay_route_alpha_client.key' % directory in postconf(host, '-P')


def test_no_route_secret_in_check_mode_diff_or_failure(relay, upstreams):
    outputs = [relay(check_mode=True, diff=True, upstreams=lab_upstreams(upstreams)[:1], routes=routes(upstreams))[1],
               relay(diff=True, upstreams=lab_upstreams(upstreams)[:1], routes=routes(upstreams, 'Route secret:changed x'),
                     preflight=False)[1],
               relay(upstreams=lab_upstreams(upstreams)[:1], routes=routes(upstreams, 'Route secret:changed x\nline'))[1]]
    for output in outputs:
        for secret in (PASSWORD_B, 'Route secret', 'changed x', 'other-91c2'):
            assert secret not in output
    assert json.loads(outputs[2])['msg'] == (
        'Invalid relay input: relay_routes[0].upstreams[0].password: must not contain a control character (U+000A)')


# ---- OAuth2 upstreams: the hop (installed, run and probed by the lab's oauth2 scenario) --------------

O2_SECRET = 'O2 app secret:unit-5d1a'
O2_UPSTREAM = dict(host='smtp.office365.com', auth='oauth2', username='relay@example.com',
                   oauth2=dict(tenant='contoso.onmicrosoft.com', client_id='00000000-0000-4000-8000-000000000001',
                               client_secret=O2_SECRET))


@pytest.fixture
def wheels(tmp_path):
    """A wheel directory as the relay role leaves it on the host: the requirements (the wheels are not read here)."""
    directory = tmp_path / 'wheels'
    directory.mkdir()
    shutil.copy(os.path.join(os.path.dirname(relay_config.__file__), '..', '..', 'roles', 'relay', 'files',
                             model.HOP_REQUIREMENTS), str(directory))
    return str(directory)


@pytest.mark.skipif(os.path.exists(model.HOP_CONFIG_DIRECTORY), reason='this machine has an OAuth2 hop of its own')
def test_check_mode_with_an_oauth2_upstream_plans_the_hop_and_writes_nothing(relay, host, wheels):
    before = snapshot(host)
    result, output = relay(check_mode=True, diff=True, preflight=False, oauth2_wheels=wheels, upstreams=[O2_UPSTREAM])
    assert result['changed'] and result['oauth2_hop'] == dict(wanted=True, changed=True, restarted=False, removed=False,
                                                              listeners=['[127.0.0.1]:10587'])
    assert snapshot(host) == before and not os.path.exists(model.HOP_CONFIG_DIRECTORY)
    diffs = dict((entry['after_header'], entry) for entry in result['diff'])
    assert '[SMTP-10587]\nserver_address = smtp.office365.com\n' in diffs[model.HOP_CONFIG]['after']
    assert 'User=smarthost-oauth2\n' in diffs[model.HOP_UNIT]['after']
    assert 'emailproxy==2026.7.3' in diffs[model.HOP_INSTALLED]['after']
    assert O2_SECRET not in output and 'unit-5d1a' not in output


@pytest.mark.skipif(os.path.exists(model.HOP_CONFIG_DIRECTORY), reason='this machine has an OAuth2 hop of its own')
def test_an_oauth2_upstream_without_the_wheels_fails_before_any_change(relay, host, tmp_path):
    before = snapshot(host)
    result, output = relay(preflight=False, oauth2_wheels=str(tmp_path / 'none'), upstreams=[O2_UPSTREAM])
    assert result['failed'] and result['msg'].startswith('relay_oauth2_wheels: the OAuth2 hop is not installed')
    assert snapshot(host) == before
    assert O2_SECRET not in output


@pytest.mark.skipif(os.path.exists(model.HOP_CONFIG_DIRECTORY), reason='this machine has an OAuth2 hop of its own')
def test_check_mode_with_keys_shows_neither_a_key_nor_the_login_derived_from_it(relay, host, wheels):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode('ascii')
    account = dict(type='service_account', client_email='relay@project.iam.gserviceaccount.com', private_key=key,
                   token_uri='https://oauth2.googleapis.com/token', project_id='project')
    google = dict(host='smtp.gmail.com', port=465, implicit_tls=True, tls='verify', username='relay-g@example.com',
                  oauth2=dict(flow='service_account', service_account_key=json.dumps(account)))
    cert = dict(O2_UPSTREAM, username='relay-c@example.com', oauth2=dict(
        tenant='contoso', client_id='app', client_key=key,
        client_certificate='-----BEGIN CERTIFICATE-----\n' + 'Q0VS' * 16 + '\n-----END CERTIFICATE-----\n'))
    before = snapshot(host)
    result, output = relay(check_mode=True, diff=True, preflight=False, oauth2_wheels=wheels, upstreams=[google, cert])
    assert result['changed'] and snapshot(host) == before
    diffs = dict((entry['after_header'], entry) for entry in result['diff'])
    # New secret files, shown as the relay's other secret files are: masked, marked changed.
    assert diffs[model.HOP_CONFIG_DIRECTORY + '/10587.json']['after'] == SECRET_MASK + ' (changed)\n'
    assert diffs[model.HOP_CONFIG_DIRECTORY + '/10588.key']['after'] == SECRET_MASK + ' (changed)\n'
    assert 'Q0VS' in diffs[model.HOP_CONFIG_DIRECTORY + '/10588.crt']['after']
    assert 'tcp dport { 10587, 10588 }' in diffs[model.HOP_GUARD]['after']
    logins = [model.load(dict(upstreams=[upstream]), 'relay_').upstreams[0].password for upstream in (google, cert)]
    key_lines = [line for line in key.splitlines() if not line.startswith('-----')]
    assert not [piece for piece in logins + key_lines if piece in output]
