# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The hop's plan: what makes it change (and so restart). The install, the unit and the restart are run by the lab's
oauth2 scenario on a systemd host; here the host paths point into a temporary directory."""

from __future__ import annotations

import os

import pytest

from ansible_collections.smarthost.postfix.plugins.module_utils import _hop as hop
from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model
from ansible_collections.smarthost.postfix.plugins.module_utils._config import masked
from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import PostfixError

UPSTREAM = dict(host='smtp.office365.com', username='relay@example.com',
                oauth2=dict(tenant='contoso.onmicrosoft.com', client_id='app', client_secret='s3cret'))
REQUIREMENTS = 'emailproxy==2026.7.3 --hash=sha256:00\n'


class Module(object):
    """What HopState uses of an AnsibleModule: the hop is running (is-active 0) or not."""

    def __init__(self, running):
        self.running = running

    def get_bin_path(self, name, required=False):
        return '/bin/' + name

    def run_command(self, argv, **kwargs):
        return (0 if self.running else 3), '', ''


@pytest.fixture
def host(tmp_path, monkeypatch):
    """The hop's paths in tmp_path, and a wheel directory with the requirements."""
    paths = dict(HOP_CONFIG=tmp_path / 'etc' / 'emailproxy.config', HOP_UNIT=tmp_path / 'hop.service',
                 HOP_INSTALLED=tmp_path / 'venv' / 'smarthost-requirements.txt', HOP_VENV=tmp_path / 'venv',
                 HOP_CONFIG_DIRECTORY=tmp_path / 'etc', HOP_HOME=tmp_path / 'home', HOP_GUARD=tmp_path / 'etc' / 'guard.nft')
    for name, path in paths.items():
        monkeypatch.setattr(hop, name, str(path), raising=False)
        # The hop's files are the model's (Hop.files): their paths too.
        monkeypatch.setattr(model, name, str(path))
    # The guard holds unless a test says otherwise (unguarded_ports itself: test_the_guard_probe_...).
    monkeypatch.setattr(hop, 'unguarded_ports', lambda ports: [])
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    (wheels / model.HOP_REQUIREMENTS).write_text(REQUIREMENTS)
    return dict((name, str(path)) for name, path in paths.items()), str(wheels)


def wanted(upstream=None):
    return model.load(dict(upstreams=[upstream or UPSTREAM]), 'relay_').wanted(model.Host('3.7.11', 'relay.example.com')).hop


def installed(paths, hop_wanted, mode=0o600):
    """A host where the hop is installed as wanted (owner aside: the test runs as any user)."""
    os.makedirs(os.path.join(paths['HOP_VENV'], 'bin'))
    open(os.path.join(paths['HOP_VENV'], 'bin', 'emailproxy'), 'w').close()
    with open(paths['HOP_INSTALLED'], 'w') as handle:
        handle.write(REQUIREMENTS)
    os.makedirs(paths['HOP_CONFIG_DIRECTORY'])
    for item in hop_wanted.files:
        with open(item.path, 'w') as handle:
            handle.write(item.content)
        os.chmod(item.path, int(item.mode, 8))
    os.chmod(paths['HOP_CONFIG'], mode)
    with open(paths['HOP_UNIT'], 'w') as handle:
        handle.write(hop_wanted.unit)


def test_a_fresh_host_needs_everything(host):
    paths, wheels = host
    state = hop.HopState(Module(running=False), wanted(), wheels, 'relay_')
    state.plan([])
    assert state.changed and state.venv_needed and state.config_changed and state.unit_changed
    assert state.reasons() == ['oauth2 hop venv', 'oauth2 hop config', 'oauth2 hop unit', 'oauth2 hop not running']
    diffs = [entry['after_header'] for entry in state.diff()]
    assert diffs == [paths['HOP_CONFIG'], paths['HOP_GUARD'], paths['HOP_UNIT'], paths['HOP_INSTALLED']]


def test_only_a_changed_secret_of_a_hop_listener_restarts_the_hop(host, monkeypatch):
    paths, wheels = host
    hop_wanted = wanted()
    installed(paths, hop_wanted)
    # The owner check needs the hop's user; here the file's owner is whoever runs the test.
    monkeypatch.setattr(hop, 'HOP_USER', __import__('pwd').getpwuid(os.getuid()).pw_name)
    state = hop.HopState(Module(running=True), hop_wanted, wheels, 'relay_')
    state.plan(['[smtp-b.example.net]:587'])
    assert not state.changed and state.reasons() == [] and state.current()
    state = hop.HopState(Module(running=True), hop_wanted, wheels, 'relay_')
    state.plan(['[127.0.0.1]:10587'])
    assert state.changed and state.secrets_changed and state.reasons() == ['oauth2 hop secret'] and not state.current()
    # No secret is ever part of what the plan shows.
    assert 's3cret' not in repr(state.diff()) and 's3cret' not in repr(state.reasons())


def test_a_config_readable_by_others_or_a_stopped_hop_is_a_change(host, monkeypatch):
    paths, wheels = host
    hop_wanted = wanted()
    installed(paths, hop_wanted, mode=0o644)
    monkeypatch.setattr(hop, 'HOP_USER', __import__('pwd').getpwuid(os.getuid()).pw_name)
    state = hop.HopState(Module(running=True), hop_wanted, wheels, 'relay_')
    state.plan([])
    assert state.config_changed and state.diff() == []
    os.chmod(paths['HOP_CONFIG'], 0o600)
    state = hop.HopState(Module(running=False), hop_wanted, wheels, 'relay_')
    state.plan([])
    assert state.changed and state.reasons() == ['oauth2 hop not running']


def test_new_requirements_reinstall_the_venv(host, monkeypatch):
    paths, wheels = host
    hop_wanted = wanted()
    installed(paths, hop_wanted)
    with open(os.path.join(wheels, model.HOP_REQUIREMENTS), 'w') as handle:
        handle.write('emailproxy==2026.8.1 --hash=sha256:11\n')
    state = hop.HopState(Module(running=True), hop_wanted, wheels, 'relay_')
    state.plan([])
    assert state.venv_needed and 'oauth2 hop venv' in state.reasons()


def test_without_wheels_an_installed_hop_keeps_its_venv_and_a_missing_one_fails(host):
    paths, wheels = host
    hop_wanted = wanted()
    state = hop.HopState(Module(running=False), hop_wanted, None, 'relay_')
    with pytest.raises(PostfixError) as failure:
        state.plan([])
    assert str(failure.value).startswith('relay_oauth2_wheels: the OAuth2 hop is not installed')
    installed(paths, hop_wanted)
    state = hop.HopState(Module(running=True), hop_wanted, None, 'relay_')
    state.plan([])
    assert not state.venv_needed


def test_no_oauth2_upstream_left_removes_what_is_there(host):
    paths, wheels = host
    state = hop.HopState(Module(running=False), None, wheels, 'relay_')
    assert not state.changed and state.diff() == []
    os.makedirs(paths['HOP_HOME'])
    state = hop.HopState(Module(running=False), None, wheels, 'relay_')
    assert state.changed and [entry['after'] for entry in state.diff()] == ['absent\n']
    state.remove()
    assert state.removed and not os.path.exists(paths['HOP_HOME'])


def owned_by_whoever_runs_the_test(monkeypatch):
    """The owner check needs the hop's user and root; here every file's owner is whoever runs the test, so the
    files are planned by content and mode only (test_config checks owners)."""
    name = __import__('pwd').getpwuid(os.getuid()).pw_name
    monkeypatch.setattr(hop, 'HOP_USER', name)
    monkeypatch.setattr(hop, '_owner', lambda item: None)


def test_a_key_file_is_written_by_the_plan_and_its_diff_never_shows_it(host, monkeypatch):
    paths, wheels = host
    key = '-----BEGIN PRIVATE KEY-----\n' + 'QUJD' * 16 + '\n-----END PRIVATE KEY-----\n'
    upstream = dict(UPSTREAM, oauth2=dict(tenant='contoso', client_id='app', client_key=key,
                                          client_certificate=key.replace('PRIVATE KEY', 'CERTIFICATE').replace('QUJD', 'Q0VS')))
    hop_wanted = wanted(upstream)
    state = hop.HopState(Module(running=False), hop_wanted, wheels, 'relay_')
    state.plan([])
    key_path = os.path.join(paths['HOP_CONFIG_DIRECTORY'], '10587.key')
    diffs = dict((entry['after_header'], entry) for entry in state.diff())
    assert diffs[key_path]['after'] == masked(key, True) and 'QUJD' not in repr(state.diff())
    # The certificate is no secret: its diff shows it.
    assert 'Q0VS' in diffs[os.path.join(paths['HOP_CONFIG_DIRECTORY'], '10587.crt')]['after']
    installed(paths, hop_wanted)
    owned_by_whoever_runs_the_test(monkeypatch)
    state = hop.HopState(Module(running=True), hop_wanted, wheels, 'relay_')
    state.plan([])
    assert not state.changed
    # Another key: a change (a restart), shown as a changed secret only.
    with open(key_path, 'w') as handle:
        handle.write(key.replace('QUJD', 'REVG'))
    state = hop.HopState(Module(running=True), hop_wanted, wheels, 'relay_')
    state.plan([])
    assert state.changed and state.reasons() == ['oauth2 hop config']
    assert [entry['after'] for entry in state.diff()] == [masked(key, True)] and masked(key, True) != masked(key)
    assert 'REVG' not in repr(state.diff()) and 'QUJD' not in repr(state.diff())


def test_a_file_of_an_upstream_gone_is_removed(host, monkeypatch):
    paths, wheels = host
    hop_wanted = wanted()
    installed(paths, hop_wanted)
    owned_by_whoever_runs_the_test(monkeypatch)
    stale = os.path.join(paths['HOP_CONFIG_DIRECTORY'], '10588.json')
    with open(stale, 'w') as handle:
        handle.write('{}\n')
    state = hop.HopState(Module(running=True), hop_wanted, wheels, 'relay_')
    state.plan([])
    assert state.changed and state.stale_files == [stale]
    assert [(entry['after_header'], entry['after']) for entry in state.diff()] == [(stale, 'absent\n')]


def test_a_running_hop_whose_guard_is_gone_is_restarted(host, monkeypatch):
    paths, wheels = host
    hop_wanted = wanted()
    installed(paths, hop_wanted)
    owned_by_whoever_runs_the_test(monkeypatch)
    monkeypatch.setattr(hop, 'unguarded_ports', lambda ports: ['port %d accepted the connection' % port for port in ports])
    state = hop.HopState(Module(running=True), hop_wanted, wheels, 'relay_')
    state.plan([])
    assert state.changed and state.reasons() == ['oauth2 hop guard'] and not state.current()


@pytest.mark.skipif(os.getuid() != 0, reason='the probe drops to the user nobody: root only')
def test_the_guard_probe_connects_as_nobody_and_sees_an_open_port_and_a_refusal(monkeypatch):
    import socket

    monkeypatch.undo()
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    open_port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    closed_port = closed.getsockname()[1]
    try:
        # Nothing guards these ports here: the open one takes nobody's connection, the closed one refuses it.
        assert hop.unguarded_ports([open_port, closed_port]) == ['port %d accepted the connection' % open_port]
        assert hop.unguarded_ports([closed_port]) == []
    finally:
        listener.close()
        closed.close()
