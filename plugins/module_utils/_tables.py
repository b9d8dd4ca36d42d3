# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Plan and write Postfix lookup tables: the postmap module's work, also done by postfix_config.

Private to the collection (leading underscore). A plan reads a table and decides what to write,
writing nothing; applying it writes. Every table is planned before the first is written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import (
    MAP_SUFFIXES,
    PostfixError,
    changed_keys,
    find_case_collisions,
    map_matches,
    map_path,
    mask_entries,
    merge_entries,
    parse_source,
    render_source,
    source_matches,
    validate_key,
    validate_value,
)


# Options of a table that default to the top-level ones.
FILE_ATTRIBUTES = ('mode', 'owner', 'group')


def validate_entries(entries, state):
    errors = []
    for key, value in entries.items():
        error = validate_key(key)
        if error is None and state == 'present':
            error = validate_value(key, value)
        if error:
            errors.append(error)
    for first, second in find_case_collisions(entries):
        errors.append('keys %r and %r differ only by case; Postfix folds keys to lower case' % (first, second))
    if errors:
        raise PostfixError('invalid entries: ' + '; '.join(errors))


def read_source(path):
    """Text of a file (a table source, main.cf, master.cf), or None if it does not exist."""
    if os.path.isdir(path):
        raise PostfixError('%s is a directory, not a file' % path)
    try:
        with open(path, 'r', encoding='utf-8', errors='surrogateescape') as source:
            return source.read()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise PostfixError('permission denied reading %s' % path)


def is_older(path, other):
    return os.stat(path).st_mtime < os.stat(other).st_mtime


@contextlib.contextmanager
def private_umask():
    """atomic_move gives a file it creates 0666 & ~umask until we set the mode: keep it private."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def attributes_for(file_args, tmp_path, final_path):
    """File arguments for a temporary file: the requested ones, else those of the file it replaces."""
    args = dict(file_args, path=tmp_path)
    if os.path.exists(final_path):
        final = os.stat(final_path)
        if args.get('owner') is None:
            args['owner'] = str(final.st_uid)
        if args.get('group') is None:
            args['group'] = str(final.st_gid)
    return args


def write_table(module, postfix, map_type, path, entries, replace_source, file_args):
    """Build the map from a private temp source, then rename both into place."""
    directory = os.path.dirname(path)
    try:
        fd, tmp_source = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    except PermissionError:
        raise PostfixError('permission denied writing in %s' % directory)
    tmp_map = map_path(map_type, tmp_source)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8', errors='surrogateescape') as source:
            source.write(render_source(entries))
            source.flush()
            os.fsync(source.fileno())
        postfix.build(map_type, tmp_source)
        moves = [(tmp_map, map_path(map_type, path))]
        if replace_source:
            moves.insert(0, (tmp_source, path))
        for tmp_path, final_path in moves:
            module.set_fs_attributes_if_different(attributes_for(file_args, tmp_path, final_path), False)
            with private_umask():
                module.atomic_move(tmp_path, final_path, unsafe_writes=module.params.get('unsafe_writes', False),
                                   keep_dest_attrs=False)
    except PermissionError as exc:
        raise PostfixError('permission denied writing %s: %s' % (exc.filename or directory, exc.strerror))
    finally:
        for leftover in (tmp_source, tmp_map):
            if os.path.exists(leftover):
                os.unlink(leftover)


def source_diff(path, text, current, entries, replace_source, secret, keys):
    if secret:
        before = render_source(mask_entries(current))
        # Keys that are new or whose value changed are marked; removed ones are missing from after.
        after = render_source(mask_entries(entries, keys)) if replace_source else before
    else:
        before = text or ''
        after = render_source(entries) if replace_source else before
    return {'before': before, 'after': after, 'before_header': path, 'after_header': path}


def check_config_directory(config_directory):
    if config_directory and not os.path.isfile(os.path.join(config_directory, 'main.cf')):
        raise PostfixError('config_directory %s has no main.cf' % config_directory)


def plan_table(module, postfix, params):
    """Read one table and decide what to write; writes nothing. Returns the plan for apply_table."""
    path = params['path']
    state = params['state']
    entries = params['entries']

    if params['exclusive'] and state == 'absent':
        raise PostfixError('exclusive=true requires state=present')
    validate_entries(entries, state)

    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise PostfixError('directory %s does not exist' % directory)

    map_type = params['type'] or postfix.default_database_type()
    if map_type not in MAP_SUFFIXES:
        raise PostfixError('default_database_type is %s, which this module does not build; set type to one of: %s'
                           % (map_type, ', '.join(sorted(MAP_SUFFIXES))))
    compiled_path = map_path(map_type, path)
    result = {'changed': False, 'changed_keys': [], 'type': map_type, 'map_path': compiled_path, 'path': path}
    plan = {'result': result, 'rebuild': False, 'file_args': module.load_file_common_arguments(params, path=path)}

    text = read_source(path)
    if text is None and state == 'absent':
        return plan
    current = parse_source(text or '')
    desired = merge_entries(current, entries, state, params['exclusive'])

    replace_source = text is None or not source_matches(current, desired)
    keys = changed_keys(current, desired)
    rebuild = replace_source
    if not replace_source:
        # Only a source that already matches leaves the map's fate open: one postmap call decides.
        if not os.path.exists(compiled_path) or is_older(compiled_path, path):
            rebuild = True
            keys = [key for key, dummy in desired]
        else:
            compiled = postfix.dump(map_type, path)
            rebuild = not map_matches(compiled, desired)
            if compiled is None:
                keys = [key for key, dummy in desired]
            else:
                keys = changed_keys(list(compiled.items()), desired)

    if rebuild:
        postfix.require_type(map_type)
        if not os.access(directory, os.W_OK):
            raise PostfixError('permission denied writing in %s' % directory)
        result['changed'] = True
        result['changed_keys'] = keys

    if module._diff:
        plan['diff'] = source_diff(path, text, current, desired, replace_source, params['secret'], keys)
    plan.update(rebuild=rebuild, desired=desired, replace_source=replace_source)
    return plan


def apply_table(module, postfix, plan):
    """Write what plan_table decided (not in check mode) and set the file attributes."""
    result = plan['result']
    file_args = plan['file_args']
    if plan['rebuild'] and not module.check_mode:
        write_table(module, postfix, result['type'], result['path'], plan['desired'], plan['replace_source'], file_args)
    for final_path in (result['path'], result['map_path']):
        if os.path.exists(final_path):
            final_args = dict(file_args, path=final_path)
            result['changed'] = module.set_fs_attributes_if_different(final_args, result['changed'])
    return result


def table_params(params, table):
    """The module's parameters as they apply to one entry of tables."""
    merged = dict(params, tables=None)
    for key, value in table.items():
        # A file attribute the table leaves unset comes from the top level.
        if value is not None or key not in FILE_ATTRIBUTES:
            merged[key] = value
    return merged


def in_table(path, func, *args):
    """Run func for one entry of tables; an error names the table it is about."""
    try:
        return func(*args)
    except PostfixError as exc:
        raise PostfixError('%s: %s' % (path, exc))
    except OSError as exc:
        raise PostfixError('%s: %s' % (exc.filename or path, exc.strerror))


def plan_tables(module, postfix, params):
    """One plan per entry of params['tables'], each checked; raises before anything is written."""
    return [in_table(table['path'], plan_table, module, postfix, table_params(params, table))
            for table in params['tables']]


def apply_tables(module, postfix, plans):
    """Write the planned tables; the results in the order of the plans."""
    return [in_table(plan['result']['path'], apply_table, module, postfix, plan) for plan in plans]


def table_options():
    """The options of one table: an entry of tables, or the top level without tables."""
    return dict(
        path=dict(type='path', required=True),
        entries=dict(type='dict', default={}),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        exclusive=dict(type='bool', default=False),
        secret=dict(type='bool', default=False),
    )


def tables_option():
    """The tables option: a list of tables, each with its own file attributes (FILE_ATTRIBUTES)."""
    one_table = table_options()
    one_table.update(mode=dict(type='raw'), owner=dict(type='str'), group=dict(type='str'))
    return dict(type='list', elements='dict', options=one_table)


def hide_secrets(module, tables):
    """Known only at run time, so no_log on the option cannot cover the values of secret tables."""
    for table in tables:
        if table['secret']:
            for value in table['entries'].values():
                if value is not None and str(value) != '':
                    module.no_log_values.add(str(value))
