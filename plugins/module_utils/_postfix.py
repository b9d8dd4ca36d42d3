# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Helpers shared by the smarthost.postfix modules.

Private to the collection (leading underscore): no compatibility promise to other collections.
Everything here is pure Python except PostfixCommands, whose run() method is the only place
that starts a process, so unit tests can replace it.
"""

from __future__ import annotations

import re

# Compiled file suffix per indexed map type; postmap appends it to the source path.
MAP_SUFFIXES = {
    'btree': '.db',
    'cdb': '.cdb',
    'hash': '.db',
    'lmdb': '.lmdb',
}

# Shown instead of a secret value in diffs.
SECRET_MASK = '********'

# What Postfix's parsers take for blanks (C isspace() without the newline, which ends a line). Postfix
# splits files on newlines only: Python's splitlines() and split() also break at \v, \f, \x1c-\x1e,
# \x85 and U+2028/U+2029, so they would read a line differently from Postfix.
BLANKS = ' \t\v\f\r'
_BLANK_RUN = re.compile('[%s]+' % BLANKS)

# Characters that no string written into a Postfix file, a command or a log may hold: C0 controls,
# DEL, NEL and the Unicode line and paragraph separators.
CONTROL_CHARACTERS = re.compile('[\x00-\x1f\x7f\x85\u2028\u2029]')

# Postfix looks for its binaries here even when PATH (e.g. under sudo or cron) does not.
SBIN_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin']


class PostfixError(Exception):
    """A failure with a message that is safe to show (it never contains a table value)."""


def run_module(module, work, path):
    """Exit with work(module)'s result, or fail with a message that never holds a table value.

    An OSError names its file (else path) and reason only: strerror and filename are enough to act on.
    """
    try:
        result = work(module)
    except PostfixError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='%s: %s' % (exc.filename or path, exc.strerror))
    module.exit_json(**result)


def map_path(map_type, source_path):
    """Path of the compiled map that postmap builds from source_path."""
    try:
        return source_path + MAP_SUFFIXES[map_type]
    except KeyError:
        raise PostfixError('map type %r is not an indexed type; use one of: %s'
                           % (map_type, ', '.join(sorted(MAP_SUFFIXES))))


def fold_key(key):
    """The key as Postfix stores it: postmap without -f folds keys to lower case."""
    return key.casefold()


def control_character(text):
    """The first control character of text as U+XXXX (safe to show: never the text itself), else None."""
    match = CONTROL_CHARACTERS.search(text)
    return 'U+%04X' % ord(match.group()) if match else None


def validate_key(key):
    """Return an error message for a key that a table source cannot hold, else None."""
    if not isinstance(key, str):
        return 'key %r: must be a string' % (key,)
    if key == '':
        return 'empty key: a table entry needs a key'
    if control_character(key):
        return 'key %r: must not contain a control character (%s)' % (CONTROL_CHARACTERS.sub('?', key), control_character(key))
    if any(char.isspace() for char in key):
        return 'key %r: must not contain whitespace (postmap splits key and value there)' % key
    if key.startswith('#'):
        return 'key %r: must not start with "#" (postmap reads that line as a comment)' % key
    return None


def validate_value(key, value):
    """Return an error message for a value that a table source cannot hold, else None.

    The message names the key only: the value may be a password.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return 'value for key %r: must be a string' % key
    value = str(value)
    if value == '':
        return 'value for key %r: must not be empty' % key
    if control_character(value):
        return 'value for key %r: must not contain a control character (%s)' % (key, control_character(value))
    if value != value.strip(BLANKS):
        return 'value for key %r: must not start or end with whitespace (postmap strips it)' % key
    return None


def find_case_collisions(keys):
    """Pairs of keys that differ only by case, which one compiled map cannot tell apart."""
    seen = {}
    collisions = []
    for key in keys:
        folded = fold_key(key)
        if folded in seen:
            collisions.append((seen[folded], key))
        else:
            seen[folded] = key
    return collisions


def logical_lines(text):
    """Join physical lines the way Postfix does (table sources, main.cf).

    Lines end at newlines only. Blank lines and lines whose first non-blank character is '#' are
    skipped; a line that starts with a blank continues the previous logical line (the newline is
    dropped and the leading blanks kept).
    """
    logical = []
    for line in text.split('\n'):
        stripped = line.strip(BLANKS)
        if not stripped or stripped.startswith('#'):
            continue
        if line[0] in BLANKS and logical:
            logical[-1] += line
        else:
            logical.append(line)
    return logical


def parse_source(text):
    """Entries of a table source as an ordered list of (key, value), duplicates kept.

    A line without a value (which postmap skips with a warning) gives value ''.
    """
    entries = []
    for line in logical_lines(text):
        parts = _BLANK_RUN.split(line.strip(BLANKS), 1)
        entries.append((parts[0], parts[1].strip(BLANKS) if len(parts) > 1 else ''))
    return entries


def parse_main_cf(text):
    """main.cf's parameters as a dict, name to value as written (the last one wins, as in Postfix)."""
    parameters = {}
    for line in logical_lines(text or ''):
        name, sep, value = line.partition('=')
        if sep:
            parameters[name.strip(BLANKS)] = value.strip(BLANKS)
    return parameters


def render_source(entries):
    """Source text for (key, value) pairs: one 'key value' line each."""
    return ''.join('%s %s\n' % (key, value) for key, value in entries)


def mask_entries(entries, changed=()):
    """The same entries with every value replaced by SECRET_MASK, marked where the value changed.

    A diff of masks alone would hide which secret changes; the mark tells without a hint of the value.
    """
    changed = set(fold_key(key) for key in changed)
    return [(key, SECRET_MASK + (' (changed)' if fold_key(key) in changed else '')) for key, dummy in entries]


def effective_entries(entries):
    """What postmap would store for a source: first entry wins per folded key, ordered."""
    result = {}
    for key, value in entries:
        if value == '':
            continue
        result.setdefault(fold_key(key), (key, value))
    return result


def merge_entries(current, entries, state, exclusive):
    """The desired table: current source entries updated with entries for state.

    Keys are matched case-insensitively, as Postfix matches them; existing entries keep
    their position and new ones are appended. With exclusive, entries is the whole table.
    """
    table = {} if exclusive else effective_entries(current)
    for key, value in entries.items():
        if state == 'present':
            table[fold_key(key)] = (key, str(value))
        else:
            table.pop(fold_key(key), None)
    return list(table.values())


def source_matches(current, desired):
    """True when the parsed source holds exactly the desired entries, one line each.

    Keys compare as written (a change of spelling is a change of the file); a file with
    duplicate keys or lines without a value does not match, so the module rewrites it clean.
    """
    return len(current) == len(desired) and dict(current) == dict(desired)


def map_matches(compiled, desired):
    """True when a dumped compiled map answers exactly the desired entries.

    Both sides are folded: the compiled map holds keys the way Postfix folded them.
    """
    if compiled is None:
        return False
    return compiled == dict((fold_key(key), value) for key, value in desired)


def changed_keys(current, desired):
    """Names of keys added, changed or removed between two (key, value) lists."""
    before = effective_entries(current)
    after = dict((fold_key(key), (key, value)) for key, value in desired)
    names = [after[folded][0] for folded in after if before.get(folded) != after[folded]]
    names.extend(before[folded][0] for folded in before if folded not in after)
    return names


def parse_dump(text):
    """Entries printed by 'postmap -s' ('key<TAB>value' per line) as a dict."""
    entries = {}
    for line in text.split('\n'):
        if not line:
            continue
        parts = _BLANK_RUN.split(line, 1)
        entries[fold_key(parts[0])] = parts[1].strip(BLANKS) if len(parts) > 1 else ''
    return entries


def _brief(stderr):
    """The last non-empty stderr line: Postfix puts its fatal reason there."""
    lines = [line for line in (stderr or '').split('\n') if line.strip()]
    return lines[-1].strip() if lines else 'no error output'


def last_lines(text, count=5):
    """The last count non-empty lines of a command's output, on one line (for an error message)."""
    return ' / '.join([line.strip() for line in (text or '').split('\n') if line.strip()][-count:])


class PostfixCommands(object):
    """Runs postmap and postconf, optionally against a config directory (-c DIR)."""

    def __init__(self, module, config_directory=None):
        self.module = module
        self.config_directory = config_directory
        self._binaries = {}
        self._supported_types = None
        self._defaults = {}

    def run(self, argv, **kwargs):
        """The single seam around module.run_command; unit tests replace it."""
        return self.module.run_command(argv, environ_update={'LANG': 'C', 'LC_ALL': 'C'}, **kwargs)

    def binary(self, name):
        if name not in self._binaries:
            path = self.module.get_bin_path(name, opt_dirs=SBIN_DIRS)
            if not path:
                raise PostfixError('%s not found: install postfix' % name)
            self._binaries[name] = path
        return self._binaries[name]

    def _argv(self, name, *args):
        argv = [self.binary(name)]
        if self.config_directory:
            argv.extend(['-c', self.config_directory])
        argv.extend(args)
        return argv

    def defaults(self, *names):
        """Postfix's built-in values of parameters ({name: value}), asked in one postconf -d call and kept
        for the module run (they need no main.cf: a Postfix installed with "No configuration" has none)."""
        asked = [name for name in names if name not in self._defaults]
        if asked:
            rc, out, err = self.run(self._argv('postconf', '-d', '-h', *asked))
            values = out.split('\n')
            if rc != 0 or len(values) < len(asked):
                raise PostfixError('postconf -d -h %s failed: %s' % (' '.join(asked), _brief(err)))
            self._defaults.update(zip(asked, (value.strip() for value in values)))
        return dict((name, self._defaults[name]) for name in names)

    def default_database_type(self):
        rc, out, err = self.run(self._argv('postconf', '-h', 'default_database_type'))
        if rc != 0 or not out.strip():
            raise PostfixError('postconf -h default_database_type failed: %s' % _brief(err))
        return out.strip()

    def supported_types(self):
        # Asked once per module run: several tables may need it.
        if self._supported_types is None:
            rc, out, err = self.run(self._argv('postconf', '-m'))
            if rc != 0:
                raise PostfixError('postconf -m failed: %s' % _brief(err))
            self._supported_types = sorted(line.strip() for line in out.splitlines() if line.strip())
        return self._supported_types

    def require_type(self, map_type):
        """Fail with the list Postfix offers when it cannot build map_type."""
        supported = self.supported_types()
        if map_type not in supported:
            raise PostfixError(
                'map type %s is not supported by this Postfix (install its postfix-%s package '
                'if the OS ships one); postconf -m lists: %s' % (map_type, map_type, ', '.join(supported)))

    def dump(self, map_type, source_path):
        """All entries of the compiled map in one postmap call, or None if it cannot be read.

        A missing, truncated or corrupt map gives None: the caller rebuilds it. Values never
        leave this method except in the returned dict.
        """
        rc, out, err = self.run(self._argv('postmap', '-s', '%s:%s' % (map_type, source_path)))
        if rc == 0:
            return parse_dump(out)
        if 'unsupported dictionary type' in (err or ''):
            self.require_type(map_type)
        if 'Permission denied' in (err or ''):
            raise PostfixError('permission denied reading %s: %s' % (map_path(map_type, source_path), _brief(err)))
        return None

    def build(self, map_type, source_path):
        """Compile source_path into its map next to it.

        -o keeps root privileges (by default postmap switches to the source file's owner, who
        may not be allowed to write in the directory); umask 077 keeps the new map private
        until the caller sets the requested mode.
        """
        rc, dummy, err = self.run(self._argv('postmap', '-o', '%s:%s' % (map_type, source_path)), umask=0o077)
        if rc == 0:
            return
        if 'unsupported dictionary type' in (err or ''):
            self.require_type(map_type)
        if 'Permission denied' in (err or ''):
            raise PostfixError('permission denied building %s: %s' % (map_path(map_type, source_path), _brief(err)))
        raise PostfixError('postmap failed to build %s: %s' % (map_path(map_type, source_path), _brief(err)))
