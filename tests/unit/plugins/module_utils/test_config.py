# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The managed block of a file (master.cf's routes, the aliases' root entry): replaced whole, nothing else touched."""

from __future__ import annotations

from ansible_collections.smarthost.postfix.plugins.module_utils._config import read_block, replace_block

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
