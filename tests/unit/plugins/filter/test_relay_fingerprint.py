# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's digest of a desired map must equal the host script's digest of a current map,
and must differ from it for every state in which the postmap module would change something."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess

import pytest

from ansible_collections.smarthost.postfix.plugins.filter.relay_fingerprint import (
    relay_map_digest,
    relay_preflight_fingerprint,
)
from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import render_source

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SCRIPT = os.path.join(ROOT, 'roles', 'relay', 'files', 'relay_map_digest.sh')
POSTMAP = shutil.which('postmap') or '/usr/sbin/postmap'
needs_postfix = pytest.mark.skipif(not os.path.exists(POSTMAP), reason='postfix is not installed')

SASL = {
    '[Smtp-A.example.net]:587': 'relay-a:A-lab pass:with spaces',
    '[smtp-b.example.net]:587': 'relay-b:B pass:other:colons',
}


@pytest.fixture
def table(tmp_path):
    """A postfix config dir and a function that writes a table the way the postmap module does."""
    (tmp_path / 'main.cf').write_text('compatibility_level = 3.6\n')
    source = tmp_path / 'relay_sasl_passwd'

    def write(entries, mode=0o600):
        source.write_text(render_source(list(entries.items())))
        subprocess.run([POSTMAP, '-c', str(tmp_path), '-o', 'hash:%s' % source], check=True)
        os.chmod(str(source), mode)
        os.chmod(str(source) + '.db', mode)
        return source
    return tmp_path, source, write


def host_digest(config_dir, source, map_type='hash', suffix='.db'):
    env = dict(os.environ, MAIL_CONFIG=str(config_dir), PATH=os.path.dirname(POSTMAP) + ':/usr/bin:/bin')
    out = subprocess.run(
        ['bash', '-c', '. "$0"; relay_map_digest "$1" "$2" "$3"', SCRIPT, map_type, str(source), suffix],
        env=env, check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    assert out.count('\n') == 1
    return out.strip()


@needs_postfix
@pytest.mark.parametrize('entries, mode', [
    (SASL, '0600'),
    ({'[smtp-b.example.net]:587': 'encrypt', '[a.example.net]:465': 'verify'}, '0644'),
    ({'@relay': 'alerts@example.com', 'root@Relay.example.com': 'ops@example.com'}, '0644'),
    ({}, '0644'),
])
def test_a_current_map_has_the_desired_digest(table, entries, mode):
    config_dir, dummy, write = table
    source = write(entries, int(mode, 8))
    assert host_digest(config_dir, source) == 'hash ' + relay_map_digest(entries, mode)


def _break_value_in_compiled_map(config_dir, source, write):
    write(dict(SASL, **{'[smtp-b.example.net]:587': 'relay-b:old'}))
    text = render_source(list(SASL.items()))
    stat = os.stat(str(source) + '.db')
    source.write_text(text)
    os.utime(str(source), ns=(stat.st_atime_ns, stat.st_mtime_ns - 10 ** 9))  # source not newer


def _stale_map(config_dir, source, write):
    write(SASL)
    stat = os.stat(str(source) + '.db')
    os.utime(str(source), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 6))


def _corrupt_map(config_dir, source, write):
    write(SASL)
    with open(str(source) + '.db', 'r+b') as compiled:
        compiled.truncate(100)


def _missing_map(config_dir, source, write):
    write(SASL)
    os.unlink(str(source) + '.db')


def _extra_source_line(config_dir, source, write):
    write(SASL)
    with open(str(source), 'a') as text:
        text.write('# a comment the module would drop\n')
    os.utime(str(source) + '.db')


def _wrong_mode(config_dir, source, write):
    write(SASL, mode=0o644)


def _old_password(config_dir, source, write):
    write(dict(SASL, **{'[smtp-b.example.net]:587': 'relay-b:old'}))


@needs_postfix
@pytest.mark.parametrize('damage', [
    _break_value_in_compiled_map, _stale_map, _corrupt_map, _missing_map, _extra_source_line,
    _wrong_mode, _old_password,
])
def test_a_map_the_module_would_change_never_has_the_desired_digest(table, damage):
    config_dir, source, write = table
    damage(config_dir, source, write)
    assert host_digest(config_dir, source) != 'hash ' + relay_map_digest(SASL, '0600')


@needs_postfix
def test_an_empty_desired_map_is_not_matched_by_a_corrupt_one(table):
    config_dir, source, write = table
    write({}, 0o644)
    with open(str(source) + '.db', 'wb') as compiled:
        compiled.write(b'not a database')
    assert host_digest(config_dir, source) != 'hash ' + relay_map_digest({}, '0644')


@needs_postfix
def test_missing_source_is_not_current(table):
    config_dir, source, dummy = table
    assert host_digest(config_dir, source) != 'hash ' + relay_map_digest({}, '0644')


UPSTREAMS = [
    {'host': 'a.example.net', 'port': 587, 'tls': 'verify', 'username': 'ua', 'password': 'p:a ss'},
    {'host': 'b.example.net', 'username': 'ub', 'password': 'pb'},
]


def fingerprint(upstreams=None, **changes):
    args = dict(ca_file='/etc/ssl/ca.pem', allow_plaintext_auth=False, timeout=30)
    args.update(changes)
    return relay_preflight_fingerprint(UPSTREAMS if upstreams is None else upstreams, **args)


def test_fingerprint_ignores_defaults_written_out():
    explicit = [UPSTREAMS[0], dict(UPSTREAMS[1], port=587, tls='encrypt', mx_lookup=False, implicit_tls=False)]
    assert fingerprint(explicit) == fingerprint()


@pytest.mark.parametrize('upstreams, changes', [
    ([UPSTREAMS[0], dict(UPSTREAMS[1], password='pb2')], {}),
    ([UPSTREAMS[0], dict(UPSTREAMS[1], username='ub2')], {}),
    ([UPSTREAMS[0], dict(UPSTREAMS[1], port=465, implicit_tls=True)], {}),
    ([UPSTREAMS[1], UPSTREAMS[0]], {}),
    (UPSTREAMS[:1], {}),
    (None, {'ca_file': '/etc/ssl/other.pem'}),
    (None, {'allow_plaintext_auth': True}),
    (None, {'timeout': 10}),
])
def test_fingerprint_changes_with_anything_the_probe_depends_on(upstreams, changes):
    assert fingerprint(upstreams, **changes) != fingerprint()


def test_fingerprint_is_a_hash_not_the_password():
    value = fingerprint()
    assert len(value) == 64 and 'p:a ss' not in value
