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
  - module: smarthost.postfix.postfix_config
    description: Writes tables together with master.cf and main.cf, checked by Postfix first, then reloads.
  - name: postmap(1)
    description: Postfix lookup table management.
    link: https://www.postfix.org/postmap.1.html
  - name: Postfix lookup table types
    description: Which map types exist and what they need.
    link: https://www.postfix.org/DATABASE_README.html
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smarthost.postfix.writes_config
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import MAP_SUFFIXES, PostfixCommands, run_module
from ansible_collections.smarthost.postfix.plugins.module_utils._tables import (
    apply_table,
    apply_tables,
    check_config_directory,
    hide_secrets,
    plan_table,
    plan_tables,
    table_options,
    tables_option,
)


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
    plans = plan_tables(module, postfix, params)
    results = apply_tables(module, postfix, plans)
    result = {'changed': any(item['changed'] for item in results), 'tables': results,
              'type': results[0]['type'] if results else params['type']}
    if module._diff:
        result['diff'] = [plan['diff'] for plan in plans if 'diff' in plan]
    return result


def argument_spec():
    # The top-level file attributes come with add_file_common_args.
    spec = table_options()
    spec['path'] = dict(type='path')
    spec.update(
        type=dict(type='str', choices=sorted(MAP_SUFFIXES)),
        config_directory=dict(type='path'),
        tables=tables_option(),
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
    hide_secrets(module, module.params['tables'] if module.params['tables'] is not None else [module.params])
    if module.params['mode'] is None:
        module.params['mode'] = '0600'

    run_module(module, manage_tables, module.params['path'])


if __name__ == '__main__':
    main()
