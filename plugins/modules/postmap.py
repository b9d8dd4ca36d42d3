#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postmap
short_description: Manage a Postfix lookup table and its compiled map
version_added: 0.1.0
description:
  - Manages the entries of a Postfix lookup table, for example C(sasl_passwd) or C(tls_policy).
    It handles the source file at O(path) and the compiled map that C(postmap) builds next to it,
    C(PATH.db) for V(hash) and V(btree), C(PATH.lmdb) or C(PATH.cdb).
  - Idempotent against both files. The source is compared with the desired entries, and the
    compiled map is read back in one C(postmap -s) call and compared too. A compiled map that is
    missing, older than its source, corrupt or answers different values is rebuilt; one that
    matches is not touched and no C(postmap) run rewrites anything.
  - The module owns the source format it writes, one C(key value) line per entry. It reads
    hand-edited files the way Postfix does (comments, blank lines and continuation lines), but a
    rewrite drops comments. A file that already holds the desired entries is left as it is.
  - Keys and values are validated before anything is written. Error messages name the key, never
    the value.
  - O(tables) manages several tables in one module run, for example the password, TLS policy and
    sender maps of one relay. Every table is checked before any is written.
author:
  - smarthost.postfix contributors (!UNKNOWN)
options:
  path:
    description:
      - Path of the table source file, for example C(/etc/postfix/sasl_passwd).
      - The compiled map is written next to it. Its directory must exist.
      - Required unless O(tables) is given.
    type: path
  tables:
    description:
      - Several tables in one module run, each with its own O(path), O(entries), O(state),
        O(exclusive), O(secret) and file attributes. O(type), O(config_directory) and the file
        attributes given at the top level apply to every table that does not set its own.
      - Every table is read and checked before any of them is written, so bad entries in one
        table leave all of them untouched.
      - Mutually exclusive with O(path), O(entries), O(state), O(exclusive) and O(secret).
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      path:
        description: Path of the table source file.
        type: path
        required: true
      entries:
        description: The entries to manage, as for the top-level O(entries).
        type: dict
        default: {}
      state:
        description: As the top-level O(state).
        type: str
        choices: [present, absent]
        default: present
      exclusive:
        description: As the top-level O(exclusive).
        type: bool
        default: false
      secret:
        description: As the top-level O(secret).
        type: bool
        default: false
      mode:
        description: Permissions of this table's files. Defaults to the top-level O(mode).
        type: raw
      owner:
        description: Owner of this table's files. Defaults to the top-level O(owner).
        type: str
      group:
        description: Group of this table's files. Defaults to the top-level O(group).
        type: str
  entries:
    description:
      - The entries to manage, as a dictionary of key to value.
      - Keys must be non-empty, must not contain whitespace and must not start with C(#).
      - Values must be non-empty strings without newlines and without leading or trailing
        whitespace (Postfix strips it). They may contain C(:) and inner spaces, as passwords do.
      - Postfix folds keys to lower case in these map types (C(postmap) without C(-f)). The source
        keeps the spelling given here, keys are matched case-insensitively (also for
        O(state=absent)), and entries whose keys differ only by case are refused.
      - With O(state=absent) only the keys matter; values are ignored and may be V(null).
    type: dict
    default: {}
  state:
    description:
      - V(present) adds or updates the listed entries.
      - V(absent) removes the listed keys. If the source file does not exist, nothing is done.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - When V(true), O(entries) is the whole table and every other entry is removed.
      - Only valid with O(state=present).
    type: bool
    default: false
  type:
    description:
      - Map type to build.
      - Defaults to the output of C(postconf -h default_database_type) for O(config_directory).
      - A type this Postfix cannot build fails with the list from C(postconf -m).
      - Switching type leaves the map of the old type in place.
    type: str
    choices: [btree, cdb, hash, lmdb]
  secret:
    description:
      - When V(true), the values are secrets. They are added to the values Ansible masks in all
        module output, and diffs show them as C(********).
      - Ansible logs module arguments to the target's syslog before the module runs; set
        C(no_target_syslog) (E(ANSIBLE_NO_TARGET_SYSLOG)) to keep secrets out of it.
    type: bool
    default: false
  config_directory:
    description:
      - Postfix configuration directory passed to C(postmap) and C(postconf) as C(-c DIR).
      - It must contain a C(main.cf). Defaults to the Postfix default (usually C(/etc/postfix)).
    type: path
  mode:
    description:
      - Permissions of the source file and the compiled map.
      - Defaults to V('0600') because tables often hold secrets.
notes:
  - The map is built from a temporary copy of the new source in the same directory, with private
    permissions, then the requested owner, group and mode are set and both files are renamed into
    place with C(atomic_move) (source first, then map). A Postfix process never reads a half-written
    table, whatever the map type, and a failed build leaves both existing files untouched. Postfix
    daemons notice the replaced map and reopen it.
  - C(postmap) runs with C(-o), so as root it does not switch to the source file owner.
seealso:
  - name: postmap(1)
    description: Postfix lookup table management.
    link: https://www.postfix.org/postmap.1.html
  - name: Postfix lookup table types
    description: Which map types exist and what they need.
    link: https://www.postfix.org/DATABASE_README.html
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    details: Reports exactly which keys would change; reads the compiled map but writes nothing.
  diff_mode:
    support: full
    details:
      - Before and after of the source file; with O(tables), one diff per table.
      - With O(secret=true) every value is masked, and the keys that are new or whose value changes are
        marked C((changed)) in the after text.
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
    support: full
  platform:
    platforms: posix
requirements:
  - Postfix (C(postmap) and C(postconf)) on the target.
"""

EXAMPLES = r"""
- name: Store relay credentials (values never shown)
  smarthost.postfix.postmap:
    path: /etc/postfix/sasl_passwd
    entries:
      "[smtp-a.example.net]:587": "relay-a:{{ vault_relay_a_password }}"
    secret: true
    exclusive: true
    owner: root
    group: root
    mode: "0600"

- name: Require TLS towards one upstream, keep other policy entries
  smarthost.postfix.postmap:
    path: /etc/postfix/tls_policy
    type: hash
    entries:
      "[smtp-a.example.net]:587": encrypt
    mode: "0644"

- name: Remove a retired upstream
  smarthost.postfix.postmap:
    path: /etc/postfix/sasl_passwd
    entries:
      "[smtp-old.example.net]:587":
    state: absent
    secret: true

- name: All maps of a relay in one module run, each with its own mode
  smarthost.postfix.postmap:
    type: hash
    tables:
      - path: /etc/postfix/sasl_passwd
        entries:
          "[smtp-a.example.net]:587": "relay-a:{{ vault_relay_a_password }}"
        secret: true
        exclusive: true
        mode: "0600"
      - path: /etc/postfix/tls_policy
        entries:
          "[smtp-a.example.net]:587": secure
        exclusive: true
        mode: "0644"

- name: Validate a table in a staging config directory
  smarthost.postfix.postmap:
    path: /etc/postfix.staging/transport
    config_directory: /etc/postfix.staging
    entries:
      example.com: "relay:[mail.example.com]:587"
"""

RETURN = r"""
changed_keys:
  description:
    - Names of the keys added, changed or removed, in the source file or in the compiled map.
    - A missing or unreadable compiled map lists every key. Values are never returned.
  returned: when O(path) is given
  type: list
  elements: str
  sample: ["[smtp-a.example.net]:587"]
type:
  description: Map type used.
  returned: always
  type: str
  sample: hash
map_path:
  description: Path of the compiled map.
  returned: when O(path) is given
  type: str
  sample: /etc/postfix/sasl_passwd.db
path:
  description: Path of the table source file.
  returned: when O(path) is given
  type: str
  sample: /etc/postfix/sasl_passwd
tables:
  description:
    - One result per entry of O(tables), in the same order, each with C(changed), RV(changed_keys),
      RV(type), RV(map_path) and RV(path) as for a single table.
  returned: when O(tables) is given
  type: list
  elements: dict
  sample:
    - changed: true
      changed_keys: ["[smtp-a.example.net]:587"]
      type: hash
      map_path: /etc/postfix/sasl_passwd.db
      path: /etc/postfix/sasl_passwd
"""

import contextlib
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import (
    MAP_SUFFIXES,
    PostfixCommands,
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
    """Text of the source file, or None if it does not exist."""
    if os.path.isdir(path):
        raise PostfixError('%s is a directory, not a table source file' % path)
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
                module.atomic_move(tmp_path, final_path, unsafe_writes=module.params['unsafe_writes'],
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


def manage_tables(module):
    params = module.params
    check_config_directory(params['config_directory'])
    postfix = PostfixCommands(module, params['config_directory'])
    postfix.binary('postmap')  # the one binary every run needs: say so first

    if params['tables'] is None:
        plan = plan_table(module, postfix, params)
        result = apply_table(module, postfix, plan)
        if 'diff' in plan:
            result['diff'] = plan['diff']
        return result

    # Every table is read and checked before the first one is written.
    plans = [in_table(table['path'], plan_table, module, postfix, table_params(params, table))
             for table in params['tables']]
    results = [in_table(plan['result']['path'], apply_table, module, postfix, plan) for plan in plans]
    result = {'changed': any(item['changed'] for item in results), 'tables': results,
              'type': results[0]['type'] if results else params['type']}
    if module._diff:
        result['diff'] = [plan['diff'] for plan in plans if 'diff' in plan]
    return result


def table_options():
    """The options of one table: an entry of tables, or the top level without tables."""
    return dict(
        path=dict(type='path', required=True),
        entries=dict(type='dict', default={}),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        exclusive=dict(type='bool', default=False),
        secret=dict(type='bool', default=False),
    )


def argument_spec():
    # A table's own file attributes (FILE_ATTRIBUTES); the top-level ones come with add_file_common_args.
    one_table = table_options()
    one_table.update(mode=dict(type='raw'), owner=dict(type='str'), group=dict(type='str'))
    spec = table_options()
    spec['path'] = dict(type='path')
    spec.update(
        type=dict(type='str', choices=sorted(MAP_SUFFIXES)),
        config_directory=dict(type='path'),
        tables=dict(type='list', elements='dict', options=one_table),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        add_file_common_args=True,
        supports_check_mode=True,
        required_one_of=[('path', 'tables')],
        mutually_exclusive=[('tables', option) for option in table_options()],
    )
    tables = module.params['tables'] if module.params['tables'] is not None else [module.params]
    for table in tables:
        if table['secret']:
            # Known only at run time, so no_log on the option cannot cover them.
            for value in table['entries'].values():
                if value is not None and str(value) != '':
                    module.no_log_values.add(str(value))
    if module.params['mode'] is None:
        module.params['mode'] = '0600'

    try:
        result = manage_tables(module)
    except PostfixError as exc:
        module.fail_json(msg=to_native(exc))
    except OSError as exc:
        # Never include the value: strerror and filename are enough to act on.
        module.fail_json(msg='%s: %s' % (exc.filename or module.params['path'], exc.strerror))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
