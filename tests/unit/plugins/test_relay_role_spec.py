# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The relay role's argument spec documents the relay model's input: same names, types, choices, defaults.

The role passes every relay_* variable to the relay_config module unchanged (or omits it), so the model's
OPTIONS are the defaults; meta/argument_specs.yml, which users read, must say the same.
"""

from __future__ import annotations

import os

import yaml

from ansible_collections.smarthost.postfix.plugins.modules import relay_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SPEC = os.path.join(ROOT, 'roles', 'relay', 'meta', 'argument_specs.yml')
TASKS = os.path.join(ROOT, 'roles', 'relay', 'tasks', 'main.yml')
# Module options the role sets from its OS variables or itself, not from a relay_* variable of the same name.
FROM_THE_ROLE = {'os_variables', 'session_cache_type', 'packages', 'map_type_packages', 'config_directory', 'aliases_file',
                 'field_prefix', 'oauth2_wheels'}
# Defaults that depend on the OS (vars/main.yml): the argument spec names them in the description only.
OS_DEFAULTS = {'tls_ca_file', 'map_type'}
# Kept for inventories that set it; no module option.
ROLE_ONLY = {'relay_no_log'}
# Read by the role's tasks (the controller's directory of the OAuth2 hop's wheels); the module gets the host's.
ROLE_ONLY.add('relay_oauth2_wheels')


def role_options():
    with open(SPEC) as handle:
        return yaml.safe_load(handle)['argument_specs']['main']['options']


def comparable(spec, os_default=False):
    keys = ('type', 'choices', 'elements', 'required') + (() if os_default else ('default',))
    result = dict((key, spec[key]) for key in keys if spec.get(key) not in (None, False))
    if 'choices' in result:
        result['choices'] = sorted(result['choices'])
    if 'options' in spec:
        result['options'] = dict((name, comparable(sub)) for name, sub in spec['options'].items())
    return result


def test_every_module_option_is_a_documented_role_variable():
    module = dict((name, spec) for name, spec in relay_config.argument_spec().items() if name not in FROM_THE_ROLE)
    role = role_options()
    assert sorted('relay_' + name for name in module) == sorted(set(role) - ROLE_ONLY)
    for name, spec in module.items():
        documented = dict(role['relay_' + name])
        if documented.get('type') == 'path':
            documented['type'] = 'str'  # the module checks the path itself, without expanding ~ or $VARS
        assert comparable(documented, name in OS_DEFAULTS) == comparable(spec, name in OS_DEFAULTS), name


def test_the_role_passes_every_option_to_the_module():
    with open(TASKS) as handle:
        tasks = yaml.safe_load(handle)
    args = [task['smarthost.postfix.relay_config'] for task in tasks if 'smarthost.postfix.relay_config' in task][0]
    # Postfix's own paths are the module's defaults; the OS-dependent ones come from os_variables.
    assert sorted(args) == sorted(set(relay_config.argument_spec()) - {'config_directory', 'aliases_file', 'packages',
                                                                       'map_type_packages', 'session_cache_type'})
