# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The relay role's argument spec documents the relay model's input: same names, types, choices, defaults.

The relay_config action passes every relay_* variable the play defines to the module (variables_prefix), so the
model's OPTIONS are the defaults; meta/argument_specs.yml, which users read, must say the same.
"""

from __future__ import annotations

import os

import yaml

from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SPEC = os.path.join(ROOT, 'roles', 'relay', 'meta', 'argument_specs.yml')
TASKS = os.path.join(ROOT, 'roles', 'relay', 'tasks', 'main.yml')
DEFAULTS = os.path.join(ROOT, 'roles', 'relay', 'defaults', 'main.yml')
# Defaults that depend on the OS (vars/main.yml): the argument spec names them in the description only.
OS_DEFAULTS = set(model.OS_OPTIONS)
# Kept for inventories that set it; no module option.
ROLE_ONLY = {'relay_no_log'}
# Read by the role's task (the controller's directory of the OAuth2 hop's wheels); the module gets the host's.
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
    spec = model.module_argument_spec()
    module = dict((name, spec[name]) for name in model.variable_options())
    role = role_options()
    assert sorted('relay_' + name for name in module) == sorted(set(role) - ROLE_ONLY)
    for name, spec in module.items():
        documented = dict(role['relay_' + name])
        if documented.get('type') == 'path':
            documented['type'] = 'str'  # the module checks the path itself, without expanding ~ or $VARS
        assert comparable(documented, name in OS_DEFAULTS) == comparable(spec, name in OS_DEFAULTS), name


def test_the_role_task_names_only_what_no_variable_gives():
    with open(TASKS) as handle:
        tasks = yaml.safe_load(handle)
    args = [task['smarthost.postfix.relay_config'] for task in tasks if 'smarthost.postfix.relay_config' in task][0]
    assert args['variables_prefix'] == 'relay_'
    # Postfix's own paths and the OS's packages are the module's defaults or come from os_variables.
    assert sorted(args) == ['oauth2_wheels', 'oauth2_wheels_from', 'os_variables', 'variables_prefix']
    assert set(args) <= set(model.HOST_OPTIONS)


def test_the_role_defaults_are_the_argument_specs_defaults():
    with open(DEFAULTS) as handle:
        defaults = yaml.safe_load(handle)
    assert set(defaults) <= ROLE_ONLY
    assert dict((name, role_options()[name].get('default')) for name in defaults) == defaults
