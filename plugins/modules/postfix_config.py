#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postfix_config
short_description: Apply lookup tables, master.cf and main.cf as one checked change, then reload Postfix
version_added: 0.1.0
description:
  - Writes the lookup tables in O(tables) (as M(smarthost.postfix.postmap) does), enables services
    that the distribution's C(master.cf) ships commented out (O(master_cf_enable)) and replaces
    C(main.cf) with O(main_cf), in one module run, then reloads Postfix.
  - Nothing is written until everything was checked. The table entries are validated, and a staging
    copy of the new C(main.cf) and C(master.cf) is checked by Postfix itself in a private directory
    inside O(config_directory). C(postconf -n) must print no warning (an unknown parameter name, a
    duplicate, a bad value), and C(mynetworks) must load as a Postfix CIDR table, because a wrong
    C(mynetworks) stops Postfix from starting. O(validate) adds a check of your own. A refused
    change leaves every live file, tables included, as it was.
  - Tables first, then C(master.cf), then C(main.cf), which may name both. Every file is replaced by a
    rename, so Postfix never reads a half-written one, and Postfix is reloaded when it runs and
    something changed (O(reload)).
author:
  - smarthost.postfix contributors (!UNKNOWN)
options:
  config_directory:
    description:
      - The Postfix configuration directory that holds C(main.cf) and C(master.cf).
      - The staging copy is made in a private temporary directory inside it and removed afterwards.
    type: path
    default: /etc/postfix
  main_cf:
    description:
      - The whole wanted content of C(main.cf).
      - A new C(main.cf) is created C(root:root 0644); an existing one keeps its owner, group and mode.
      - When not given, C(main.cf) is left as it is (and still checked with the new C(master.cf)).
    type: str
  tables:
    description:
      - Lookup tables to write before C(master.cf) and C(main.cf), each as an entry of the O(ignore:tables)
        option of M(smarthost.postfix.postmap) (path, entries, state, exclusive, secret, mode, owner, group).
      - A table's mode defaults to V('0600'). The values of a table with O(tables[].secret=true) never appear
        in the module's output, and diffs show them as C(********).
      - Needs an existing C(main.cf) in O(config_directory), because C(postmap) reads it.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Path of the table source file; the compiled map is written next to it.
        type: path
        required: true
      entries:
        description: The entries to manage, key to value, as for M(smarthost.postfix.postmap).
        type: dict
        default: {}
      state:
        description: V(present) adds or updates the entries, V(absent) removes their keys.
        type: str
        choices: [present, absent]
        default: present
      exclusive:
        description: When V(true), O(tables[].entries) is the whole table.
        type: bool
        default: false
      secret:
        description: When V(true), the values are secrets, masked in all output and diffs.
        type: bool
        default: false
      mode:
        description: Permissions of the table's files.
        type: raw
      owner:
        description: Owner of the table's files.
        type: str
      group:
        description: Group of the table's files.
        type: str
  type:
    description:
      - Map type of the O(tables). Defaults to C(postconf -h default_database_type).
    type: str
    choices: [btree, cdb, hash, lmdb]
  master_cf_enable:
    description:
      - Services to enable in C(master.cf), as C(NAME/TYPE) (the C(postconf -M) notation), for
        example V(tlsproxy/unix).
      - A service that is already enabled is left as it is. One that is commented out (C(#NAME TYPE ...))
        is enabled by removing the C(#) from its line and from the C(#  -o ...) lines that continue it.
      - A service that is neither enabled nor commented out fails the module, as the line to enable
        would have to be invented.
    type: list
    elements: str
    default: []
  validate:
    description:
      - A command of your own that must succeed before the new files are written, for example a
        check that a CA file exists.
      - C(%s) is replaced by the staging directory, which holds the new C(main.cf) and C(master.cf).
        It is run without a shell, so use C(/bin/sh -c '...' name %s) for one.
      - Its standard error (else its output) is part of the failure message.
    type: str
  reload:
    description:
      - V(changed) reloads Postfix when this run changed a file.
      - V(always) reloads Postfix even when no file changed.
      - V(never) leaves Postfix alone, for example when a change of C(inet_interfaces) needs a restart
        through the service manager instead.
      - A Postfix that is not running is never started or reloaded.
    type: str
    choices: [changed, always, never]
    default: changed
notes:
  - Postfix reads a C(main.cf) younger than 2 seconds again until it is 2 seconds old. The module
    dates the new file back by 2 seconds (it was written by a rename, never in place), so the reload
    that follows picks it up at once.
  - Ansible logs module arguments to the target's syslog before the module runs; with secret tables,
    set C(no_target_syslog) (E(ANSIBLE_NO_TARGET_SYSLOG)) to keep them out of it.
  - The checks run as the module user (root), with C(postconf -c) and C(postmap -c) on the staging
    directory; a compatibility level or parameter that only the running master would refuse is not
    covered.
seealso:
  - module: smarthost.postfix.postmap
  - name: postconf(5)
    description: Postfix configuration parameters.
    link: https://www.postfix.org/postconf.5.html
  - name: master(5)
    description: Postfix master process configuration file format.
    link: https://www.postfix.org/master.5.html
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - smarthost.postfix.writes_config
attributes:
  check_mode:
    support: full
    details: Runs the staging checks (in a temporary directory it removes again) and reports what would change; writes no live file and does not reload.
  diff_mode:
    support: full
    details:
      - One diff per changed file, tables first (secret values masked as by M(smarthost.postfix.postmap)),
        then C(master.cf) and C(main.cf).
requirements:
  - Postfix (C(postconf), C(postmap) and C(postfix)) on the target.
"""

EXAMPLES = r"""
- name: Credentials, TLS connection reuse and main.cf in one checked change, then reload
  smarthost.postfix.postfix_config:
    tables:
      - path: /etc/postfix/tls_policy
        entries: {"[smtp-a.example.net]:587": verify}
        mode: "0644"
      - path: /etc/postfix/sasl_passwd
        entries: {"[smtp-a.example.net]:587": "relay-a:{{ vault_relay_a_password }}"}
        secret: true
    type: hash
    master_cf_enable:
      - tlsproxy/unix
    main_cf: "{{ lookup('ansible.builtin.template', 'main.cf.j2') }}"
  vars:
    ansible_no_target_syslog: true

- name: Write main.cf, but leave the restart to the service manager (inet_interfaces changed)
  smarthost.postfix.postfix_config:
    main_cf: "{{ lookup('ansible.builtin.template', 'main.cf.j2') }}"
    reload: never

- name: Refuse the change unless the CA file the TLS policy needs is readable
  smarthost.postfix.postfix_config:
    main_cf: "{{ lookup('ansible.builtin.template', 'main.cf.j2') }}"
    validate: /usr/bin/test -r /etc/ssl/certs/ca-certificates.crt -a -d %s
"""

RETURN = r"""
tables:
  description:
    - One result per entry of O(tables), in the same order, each with C(changed), C(changed_keys) (names,
      never values), C(type), C(map_path) and C(path), as the O(ignore:tables) result of M(smarthost.postfix.postmap).
  returned: always
  type: list
  elements: dict
main_cf_changed:
  description: Whether C(main.cf) was (or in check mode would be) replaced.
  returned: always
  type: bool
  sample: true
enabled_services:
  description: The services of O(master_cf_enable) that were (or would be) enabled by this run.
  returned: always
  type: list
  elements: str
  sample: [tlsproxy/unix]
reloaded:
  description: Whether Postfix was reloaded.
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils._config import ConfigChange
from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import MAP_SUFFIXES, run_module
from ansible_collections.smarthost.postfix.plugins.module_utils._tables import hide_secrets, tables_option


def configure(module):
    params = module.params
    change = ConfigChange(module, params['config_directory'])
    try:
        change.plan(params['main_cf'], params['master_cf_enable'], params['tables'], params['type'])
        change.check(params['validate'])
        result = {'main_cf_changed': change.main_changed, 'enabled_services': change.enabled, 'reloaded': False}
        if module._diff:
            result['diff'] = change.diff()
        # In check mode this only reports, file attributes included.
        result['tables'] = change.apply()
    finally:
        change.cleanup()
    result['changed'] = change.files_changed or any(table['changed'] for table in result['tables'])
    if not module.check_mode and (params['reload'] == 'always' or (params['reload'] == 'changed' and result['changed'])):
        result['reloaded'] = change.reload()
        result['changed'] = result['changed'] or result['reloaded']
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_directory=dict(type='path', default='/etc/postfix'),
            main_cf=dict(type='str'),
            tables=dict(tables_option(), default=[]),
            type=dict(type='str', choices=sorted(MAP_SUFFIXES)),
            master_cf_enable=dict(type='list', elements='str', default=[]),
            validate=dict(type='str'),
            reload=dict(type='str', default='changed', choices=['changed', 'always', 'never']),
        ),
        supports_check_mode=True,
    )
    hide_secrets(module, module.params['tables'])
    run_module(module, configure, module.params['config_directory'])


if __name__ == '__main__':
    main()
