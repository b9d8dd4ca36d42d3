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
version_added: 0.2.0
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
attributes:
  check_mode:
    support: full
    details: Runs the staging checks (in a temporary directory it removes again) and reports what would change; writes no live file and does not reload.
  diff_mode:
    support: full
    details:
      - One diff per changed file, tables first (secret values masked as by M(smarthost.postfix.postmap)),
        then C(master.cf) and C(main.cf).
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
    support: full
  platform:
    platforms: posix
requirements:
  - Postfix (C(postconf), C(postmap) and C(postfix)) on the target.
"""

EXAMPLES = r"""
- name: Credentials, TLS connection reuse and main.cf in one checked change, then reload
  smarthost.postfix.postfix_config:
    tables:
      - path: /etc/postfix/sasl_passwd
        entries:
          "[smtp-a.example.net]:587": "relay-a:{{ vault_relay_a_password }}"
        secret: true
        exclusive: true
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
  sample:
    - changed: true
      changed_keys: ["[smtp-a.example.net]:587"]
      type: hash
      map_path: /etc/postfix/sasl_passwd.db
      path: /etc/postfix/sasl_passwd
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

import os
import re
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smarthost.postfix.plugins.module_utils._postfix import MAP_SUFFIXES, PostfixCommands, PostfixError, run_module
from ansible_collections.smarthost.postfix.plugins.module_utils._tables import (
    apply_tables,
    check_config_directory,
    hide_secrets,
    plan_tables,
    read_source,
    tables_option,
)

SERVICE_TYPES = ('inet', 'unix', 'unix-dgram', 'fifo', 'pass')
REFUSED = 'Postfix refuses the new main.cf: '


def parse_service(spec):
    """NAME/TYPE as (name, type); the name may hold a host:port, never whitespace or '/'."""
    name, slash, service_type = spec.rpartition('/')
    if not slash or not name or '/' in name or any(char.isspace() or char == '#' for char in name) \
            or service_type not in SERVICE_TYPES:
        raise PostfixError('master_cf_enable: %r is not NAME/TYPE with TYPE one of %s' % (spec, ', '.join(SERVICE_TYPES)))
    return name, service_type


def service_line(name, service_type):
    """Matches the first line of the service, enabled or commented out."""
    return re.compile(r'^(#\s*)?%s\s+%s(\s|$)' % (re.escape(name), re.escape(service_type)))


def enable_service(lines, spec):
    """Lines of master.cf with the service enabled, and whether they changed."""
    pattern = service_line(*parse_service(spec))
    matches = [index for index, line in enumerate(lines) if pattern.match(line)]
    if any(not lines[index].startswith('#') for index in matches):
        return lines, False
    if not matches:
        raise PostfixError('master.cf has no %s service, enabled or commented out: add its line to master.cf' % spec)
    start = matches[0]
    lines = list(lines)
    lines[start] = lines[start].lstrip('#').lstrip()
    # "#  -o name=value" or "#  flags=... argv=..." lines continue the commented service; master.cf's
    # own comments have one space after the '#' ("# Interfaces to ...").
    index = start + 1
    while index < len(lines) and re.match(r'^#(\s{2,}|\s+-o\s)\S', lines[index]):
        lines[index] = lines[index][1:]
        index += 1
    return lines, True


def mynetworks_table(value):
    """A CIDR table source from a mynetworks value: one 'network ok' line per network.

    Lookup tables (type:name) and pattern files (/path) are left to Postfix: they are no networks.
    """
    lines = []
    for item in re.split(r'[\s,]+', value.strip()):
        if not item or item.startswith('/') or re.match(r'^[a-z0-9_]+:', item, re.IGNORECASE):
            continue
        lines.append('%s ok\n' % item)
    return ''.join(lines)


def refused(lines, staging):
    """Postfix's complaint in one line; the temporary directory's name would only confuse, so it goes."""
    text = ' / '.join(line.strip() for line in lines if line.strip())
    return REFUSED + text.replace(os.path.join(staging, ''), 'staging ')


def check_staging(module, staging, main_cf, master_cf):
    """Let Postfix read the new configuration in the staging directory; raise what it refuses."""
    with open(os.path.join(staging, 'main.cf'), 'w', encoding='utf-8', errors='surrogateescape') as handle:
        handle.write(main_cf)
    # Old enough not to be reread while postconf runs (see the notes).
    past = time.time() - 60
    os.utime(os.path.join(staging, 'main.cf'), (past, past))
    if master_cf is not None:
        with open(os.path.join(staging, 'master.cf'), 'w', encoding='utf-8', errors='surrogateescape') as handle:
            handle.write(master_cf)
    postfix = PostfixCommands(module, staging)
    dummy, dummy, err = postfix.run(postfix._argv('postconf', '-n'))
    warnings = sorted(set(line.strip() for line in err.splitlines() if line.strip()))
    if warnings:
        raise PostfixError(refused(warnings, staging))
    rc, out, err = postfix.run(postfix._argv('postconf', '-h', 'mynetworks'))
    if rc != 0:
        raise PostfixError(refused(err.splitlines() or ['postconf -h mynetworks failed'], staging))
    table = os.path.join(staging, 'mynetworks.cidr')
    with open(table, 'w') as handle:
        handle.write(mynetworks_table(out))
    # Like every Postfix command, postmap also dies on a bad global parameter (host names, addresses,
    # compatibility_level, mail_owner): the check the master makes at start-up.
    dummy, dummy, err = postfix.run(postfix._argv('postmap', '-q', '127.0.0.1', 'cidr:' + table))
    if err.strip():
        raise PostfixError(refused(err.splitlines(), staging))


def run_validate(module, command, staging):
    if '%s' not in command:
        raise PostfixError('validate must contain %s, the staging directory')
    rc, out, err = module.run_command(command.replace('%s', staging))
    if rc != 0:
        raise PostfixError('validate refused the new configuration (exit status %d): %s' % (rc, (err or out).strip()))


def write_file(module, path, content, new_mode):
    """Replace path by a rename; an existing file's owner, group and mode carry over (atomic_move)."""
    handle, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=os.path.dirname(path))
    with os.fdopen(handle, 'w', encoding='utf-8', errors='surrogateescape') as tmp:
        tmp.write(content)
    if not os.path.exists(path):
        os.chmod(tmp_path, new_mode)
    module.atomic_move(tmp_path, path)


def reload_postfix(module, postfix):
    """Reload a running Postfix; a stopped one stays stopped (starting it is the service manager's job)."""
    directory = module.params['config_directory']
    binary = postfix.binary('postfix')
    rc, dummy, dummy = module.run_command([binary, '-c', directory, 'status'])
    if rc != 0:
        return False
    rc, out, err = module.run_command([binary, '-c', directory, 'reload'])
    if rc != 0:
        raise PostfixError('postfix reload failed: %s' % (err or out).strip())
    return True


def diff_entry(path, before, after):
    return {'before_header': path, 'after_header': path, 'before': before or '', 'after': after}


def configure(module):
    params = module.params
    directory = params['config_directory']
    main_path = os.path.join(directory, 'main.cf')
    master_path = os.path.join(directory, 'master.cf')
    if not os.path.isdir(directory):
        raise PostfixError('config_directory %s does not exist: install postfix' % directory)

    # Tables are planned (read and checked) first, and written first: main.cf may name them.
    plans, postfix = [], PostfixCommands(module, directory)
    if params['tables']:
        check_config_directory(directory)
        table_defaults = dict(type=params['type'], mode='0600', owner=None, group=None, tables=params['tables'])
        plans = plan_tables(module, postfix, table_defaults)

    main_before = read_source(main_path)
    main_after = params['main_cf'] if params['main_cf'] is not None else main_before
    if main_after is None:
        raise PostfixError('%s does not exist and main_cf is not given' % main_path)
    master_before = read_source(master_path)
    # Postfix reads master.cf too when it checks main.cf (postconf -n warns without one).
    if master_before is None and (params['master_cf_enable'] or main_after != main_before):
        raise PostfixError('%s does not exist: install postfix' % master_path)
    lines, enabled = (master_before or '').splitlines(True), []
    for spec in params['master_cf_enable']:
        lines, changed = enable_service(lines, spec)
        if changed:
            enabled.append(spec)
    master_after = ''.join(lines) if enabled else master_before

    main_changed = main_after != main_before
    files_changed = main_changed or bool(enabled)
    result = {'main_cf_changed': main_changed, 'enabled_services': enabled, 'reloaded': False}
    if module._diff:
        result['diff'] = [plan['diff'] for plan in plans if 'diff' in plan] + [
            diff_entry(path, before, after) for path, before, after, differs in (
                (master_path, master_before, master_after, bool(enabled)), (main_path, main_before, main_after, main_changed))
            if differs]

    if files_changed:
        staging = tempfile.mkdtemp(prefix='.staging.', dir=directory)
        try:
            check_staging(module, staging, main_after, master_after)
            if params['validate']:
                run_validate(module, params['validate'], staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    # In check mode this only reports, file attributes included.
    result['tables'] = apply_tables(module, postfix, plans)
    result['changed'] = files_changed or any(table['changed'] for table in result['tables'])
    if module.check_mode:
        return result

    # master.cf before main.cf: main.cf may name a service that only the new master.cf defines.
    if enabled:
        write_file(module, master_path, master_after, 0o644)
    if main_changed:
        write_file(module, main_path, main_after, 0o644)
        past = time.time() - 2
        os.utime(main_path, (past, past))
    if params['reload'] == 'always' or (params['reload'] == 'changed' and result['changed']):
        result['reloaded'] = reload_postfix(module, postfix)
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
