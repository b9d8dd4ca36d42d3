# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import shutil
import re
import subprocess

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils import _postfix as pf

POSTMAP = shutil.which('postmap') or '/usr/sbin/postmap'
needs_postfix = pytest.mark.skipif(not os.path.exists(POSTMAP), reason='postfix is not installed')
PASSWORD = 'relay-a:pa ss:w0rd'


# --- source parsing: must read a file exactly as postmap does --------------------------------

def test_parse_skips_comments_and_blank_lines():
    text = '# header\n\nkey1 value1\n   # indented comment\nkey2 value2\n'
    assert pf.parse_source(text) == [('key1', 'value1'), ('key2', 'value2')]


def test_parse_joins_continuation_lines_keeping_inner_whitespace():
    text = 'key1 first\n  second\n# comment between\n third\nkey2 v\n'
    assert pf.parse_source(text) == [('key1', 'first  second third'), ('key2', 'v')]


def test_parse_splits_at_first_whitespace_and_strips_value_ends():
    text = 'key\t  %s   \n' % PASSWORD
    assert pf.parse_source(text) == [('key', PASSWORD)]


def test_parse_keeps_duplicates_and_lines_without_value():
    assert pf.parse_source('a 1\nA 2\nlonely\n') == [('a', '1'), ('A', '2'), ('lonely', '')]


def test_effective_entries_first_folded_key_wins_like_postmap():
    entries = pf.effective_entries([('A', '1'), ('a', '2'), ('lonely', ''), ('b', '3')])
    assert entries == {'a': ('A', '1'), 'b': ('b', '3')}


def test_render_then_parse_round_trips_password_shapes():
    entries = [('[smtp.example.net]:587', PASSWORD), ('other', 'x:y z')]
    assert pf.render_source(entries) == '[smtp.example.net]:587 %s\nother x:y z\n' % PASSWORD
    assert pf.parse_source(pf.render_source(entries)) == entries


# --- validation: messages name the key, never the value ---------------------------------------

@pytest.mark.parametrize('key, fragment', [
    ('', 'empty key'),
    ('has space', 'whitespace'),
    ('tab\there', 'control character (U+0009)'),
    ('new\nline', 'control character (U+000A)'),
    ('vertical\x0btab', 'control character (U+000B)'),
    ('next\x85line', 'control character (U+0085)'),
    ('no-break\xa0space', 'whitespace'),
    ('#comment', 'must not start with "#"'),
    ('nul\0', 'control character (U+0000)'),
    (5, 'must be a string'),
])
def test_validate_key_rejects(key, fragment):
    assert fragment in pf.validate_key(key)


def test_validate_key_accepts_bracketed_host_and_port():
    assert pf.validate_key('[smtp-a.example.net]:587') is None


@pytest.mark.parametrize('value, fragment', [
    ('', 'must not be empty'),
    ('line\nbreak', 'control character (U+000A)'),
    ('carriage\rreturn', 'control character (U+000D)'),
    ('form\x0cfeed', 'control character (U+000C)'),
    ('line\u2028separator', 'control character (U+2028)'),
    ('del\x7f', 'control character (U+007F)'),
    (' leading', 'whitespace'),
    ('trailing ', 'whitespace'),
    (None, 'must be a string'),
    (True, 'must be a string'),
    (['a'], 'must be a string'),
])
def test_validate_value_rejects_without_showing_value(value, fragment):
    message = pf.validate_value('the-key', value)
    assert fragment in message
    assert "'the-key'" in message
    if isinstance(value, str) and value.strip():
        assert value.strip() not in message


@pytest.mark.parametrize('value', [PASSWORD, 'OK', 550, 'relay:[mail.example.com]:587'])
def test_validate_value_accepts(value):
    assert pf.validate_value('k', value) is None


def test_case_collisions_are_reported_in_pairs():
    assert pf.find_case_collisions(['User', 'other', 'USER']) == [('User', 'USER')]
    assert pf.find_case_collisions(['a', 'b']) == []


# --- desired table and comparisons ------------------------------------------------------------

CURRENT = [('keep', 'k'), ('User', 'old'), ('drop', 'd')]


def test_merge_present_updates_in_place_and_appends():
    desired = pf.merge_entries(CURRENT, {'user': 'new', 'added': 'a'}, 'present', False)
    assert desired == [('keep', 'k'), ('user', 'new'), ('drop', 'd'), ('added', 'a')]


def test_merge_exclusive_is_exactly_the_entries():
    assert pf.merge_entries(CURRENT, {'b': '2', 'a': 1}, 'present', True) == [('b', '2'), ('a', '1')]


def test_merge_absent_removes_case_insensitively():
    assert pf.merge_entries(CURRENT, {'USER': None, 'missing': None}, 'absent', False) == [('keep', 'k'), ('drop', 'd')]


def test_source_matches_ignores_order_but_not_spelling_or_duplicates():
    desired = [('a', '1'), ('b', '2')]
    assert pf.source_matches([('b', '2'), ('a', '1')], desired)
    assert not pf.source_matches([('A', '1'), ('b', '2')], desired)
    assert not pf.source_matches([('a', '1'), ('b', '2'), ('a', '1')], desired)
    assert not pf.source_matches([('a', '1'), ('b', '3')], desired)
    assert not pf.source_matches([('a', '1'), ('b', '2'), ('lonely', '')], desired)


def test_map_matches_compares_folded_keys():
    desired = [('User', PASSWORD)]
    assert pf.map_matches({'user': PASSWORD}, desired)
    assert not pf.map_matches({'user': 'other'}, desired)
    assert not pf.map_matches({'user': PASSWORD, 'extra': 'x'}, desired)
    assert not pf.map_matches(None, desired)


def test_changed_keys_names_added_changed_and_removed():
    keys = pf.changed_keys(CURRENT, [('keep', 'k'), ('User', 'new'), ('added', 'a')])
    assert keys == ['User', 'added', 'drop']
    assert pf.changed_keys(CURRENT, CURRENT) == []


def test_parse_dump_reads_tab_separated_output_with_spaces_in_values():
    assert pf.parse_dump('user\t%s\nother\tx\n\n' % PASSWORD) == {'user': PASSWORD, 'other': 'x'}


def test_mask_entries_hides_every_value():
    masked = pf.render_source(pf.mask_entries([('a', PASSWORD), ('b', 'x')]))
    assert masked == 'a ********\nb ********\n'


def test_mask_entries_marks_changed_keys_case_insensitively():
    masked = pf.render_source(pf.mask_entries([('A', PASSWORD), ('b', 'x')], changed=['a']))
    assert masked == 'A ******** (changed)\nb ********\n'
    assert PASSWORD not in masked


def test_map_path_suffixes_and_unknown_type():
    assert pf.map_path('hash', '/t') == '/t.db'
    assert pf.map_path('btree', '/t') == '/t.db'
    assert pf.map_path('lmdb', '/t') == '/t.lmdb'
    assert pf.map_path('cdb', '/t') == '/t.cdb'
    with pytest.raises(pf.PostfixError, match='not an indexed type'):
        pf.map_path('regexp', '/t')


# --- PostfixCommands against the real binaries -------------------------------------------------

@pytest.fixture
def module(set_module_args):
    set_module_args({})
    return AnsibleModule(argument_spec={})


@needs_postfix
def test_default_type_and_supported_types_come_from_postconf(module, config_dir):
    commands = pf.PostfixCommands(module, config_dir)
    assert commands.default_database_type() in pf.MAP_SUFFIXES
    assert 'hash' in commands.supported_types()


@needs_postfix
def test_defaults_are_asked_in_one_postconf_call_and_kept(module, config_dir, calls):
    commands = pf.PostfixCommands(module, config_dir)
    first = commands.defaults('mail_version', 'queue_directory')
    assert re.match(r'\A\d+\.\d+', first['mail_version']) and first['queue_directory'].startswith('/')
    assert commands.defaults('queue_directory') == {'queue_directory': first['queue_directory']}
    wanted = {'inet_interfaces': 'all', 'mail_version': first['mail_version']}
    assert commands.defaults('inet_interfaces', 'mail_version') == wanted
    assert [argv[-3:] for argv in calls] == [['-h', 'mail_version', 'queue_directory'], ['-d', '-h', 'inet_interfaces']]


@needs_postfix
def test_build_then_dump_round_trips_through_postmap(module, config_dir, tmp_path):
    source = tmp_path / 'sasl_passwd'
    source.write_text(pf.render_source([('[Smtp.example.net]:587', PASSWORD)]))
    commands = pf.PostfixCommands(module, config_dir)
    commands.build('hash', str(source))
    assert commands.dump('hash', str(source)) == {'[smtp.example.net]:587': PASSWORD}
    query = subprocess.run([POSTMAP, '-c', config_dir, '-q', '[smtp.example.net]:587', 'hash:%s' % source],
                           capture_output=True, text=True, check=True)
    assert query.stdout.strip() == PASSWORD


@needs_postfix
def test_dump_of_corrupt_or_missing_map_is_none(module, config_dir, tmp_path):
    source = tmp_path / 'table'
    source.write_text('a b\n')
    commands = pf.PostfixCommands(module, config_dir)
    assert commands.dump('hash', str(source)) is None
    (tmp_path / 'table.db').write_bytes(b'not a berkeley db file')
    assert commands.dump('hash', str(source)) is None


@needs_postfix
def test_build_failure_is_reported_without_table_content(module, config_dir, tmp_path):
    commands = pf.PostfixCommands(module, config_dir)
    with pytest.raises(pf.PostfixError, match='postmap failed to build'):
        commands.build('hash', str(tmp_path / 'missing-source'))


def test_unsupported_type_lists_what_postconf_offers(module, monkeypatch):
    commands = pf.PostfixCommands(module)
    monkeypatch.setattr(commands, 'binary', lambda name: '/usr/sbin/' + name)
    monkeypatch.setattr(commands, 'run', lambda argv, **kw: (0, 'btree\nhash\nregexp\n', ''))
    with pytest.raises(pf.PostfixError, match=r'lmdb is not supported .*lists: btree, hash, regexp'):
        commands.require_type('lmdb')
    commands.require_type('hash')


def test_missing_binary_says_install_postfix(module, monkeypatch):
    monkeypatch.setattr(module, 'get_bin_path', lambda *args, **kwargs: None)
    with pytest.raises(pf.PostfixError, match='postmap not found: install postfix'):
        pf.PostfixCommands(module).dump('hash', '/nonexistent')


def test_config_directory_is_passed_as_dash_c(module, monkeypatch):
    commands = pf.PostfixCommands(module, '/etc/postfix-staging')
    seen = []
    monkeypatch.setattr(commands, 'binary', lambda name: '/usr/sbin/' + name)
    monkeypatch.setattr(commands, 'run', lambda argv, **kw: seen.append(argv) or (0, 'lmdb\n', ''))
    assert commands.default_database_type() == 'lmdb'
    assert seen == [['/usr/sbin/postconf', '-c', '/etc/postfix-staging', '-h', 'default_database_type']]
