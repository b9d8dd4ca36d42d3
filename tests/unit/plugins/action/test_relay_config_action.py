# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The relay_config action: options from the play's variables (variables_prefix), the OAuth2 wheels' copy.

Ansible's own Task, Templar and DataLoader; only the module run and the copy action are replaced (they
would reach a host), so what the action hands the module is what is checked.
"""

from __future__ import annotations

import types

import pytest

from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model


@pytest.fixture(autouse=True)
def controller(monkeypatch):
    """Ansible's controller classes, imported here rather than with the file: from ansible-core 2.19 on, importing
    them marks the process as the controller, and the module tests collected with this file would then see
    their modules' warnings sent to the controller's display instead of their results. The mark is undone
    after each test."""
    try:
        from ansible.module_utils import _internal
    except ImportError:  # 2.17: no such module
        _internal = None
    if hasattr(_internal, 'is_controller'):  # 2.19 on
        monkeypatch.setattr(_internal, 'is_controller', _internal.is_controller)
    from ansible.errors import AnsibleActionFail
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook.play_context import PlayContext
    from ansible.playbook.task import Task
    from ansible.template import Templar

    from ansible_collections.smarthost.postfix.plugins.action import relay_config as action

    try:
        from ansible.template import trust_as_template
    except ImportError:  # ansible-core before 2.19 renders every string
        def trust_as_template(text):
            return text
    return types.SimpleNamespace(AnsibleActionFail=AnsibleActionFail, DataLoader=DataLoader, PlayContext=PlayContext,
                                 Task=Task, Templar=Templar, action=action, trust_as_template=trust_as_template)


def run(controller, args, variables, copies=None):
    """Run the action; returns (what the module got, the copies asked for, the action's result)."""
    task = controller.Task()
    task.args = dict(args)
    loader = controller.DataLoader()
    # A connection whose remote temporary directory exists already: nothing to create before the module.
    connection = types.SimpleNamespace(_shell=types.SimpleNamespace(tmpdir='/tmp/remote'))
    plugin = controller.action.ActionModule(task, connection, controller.PlayContext(), loader,
                                            controller.Templar(loader=loader, variables=variables), None)
    got, copied = {}, []

    def execute_module(module_name=None, module_args=None, task_vars=None, **kwargs):
        got.update(name=module_name, args=module_args)
        return {'changed': False, 'tables': []}

    def copy(source, dest, task_vars):
        copied.append((source, dest))
        return (copies or {}).get(source, {'changed': True})

    plugin._execute_module = execute_module
    plugin._copy = copy
    plugin._find_needle = lambda where, name: '/role/files/' + name
    return got, copied, plugin.run(task_vars=variables)


UPSTREAMS = [{'host': 'smtp-a.example.net', 'username': 'relay-a', 'password': 'secret'}]


def test_defined_variables_become_options_and_undefined_ones_stay_unset(controller):
    # As a play's vars file gives it: a template, rendered when the action takes it.
    variables = {'relay_upstreams': controller.trust_as_template('{{ lab_upstreams }}'), 'lab_upstreams': UPSTREAMS, 'relay_inet_interfaces': 'all',
                 'relay_preflight': False, 'relay_service': False, 'omit': '__omit_place_holder__x'}
    got, copied, result = run(controller, {'variables_prefix': 'relay_', 'os_variables': {'Debian': {}}}, variables)
    assert got['name'] == 'smarthost.postfix.relay_config' and copied == []
    assert got['args'] == {'upstreams': UPSTREAMS, 'inet_interfaces': 'all', 'preflight': False, 'service': False,
                           'os_variables': {'Debian': {}}, 'field_prefix': 'relay_'}
    assert result['changed'] is False


@pytest.mark.parametrize('value', [None, '', '__omit_place_holder__x', 'omit template'])
def test_null_empty_or_omitted_variables_give_the_default(controller, value):
    if value == 'omit template':
        # As a play gives it: "{{ x | default(omit) }}" with x undefined.
        value = controller.trust_as_template('{{ undefined_here | default(omit) }}')
    variables = {'relay_myhostname': value, 'relay_myorigin': 'example.com', 'omit': '__omit_place_holder__x'}
    got, dummy, dummy = run(controller, {'variables_prefix': 'relay_'}, variables)
    assert got['args'] == {'myorigin': 'example.com', 'field_prefix': 'relay_'}


def test_the_task_wins_over_a_variable_and_host_options_never_come_from_variables(controller):
    variables = dict(('relay_' + name, '/from/a/variable') for name in model.HOST_OPTIONS)
    variables.update(relay_state='present', relay_mynetworks=['192.0.2.0/24'])
    got, dummy, dummy = run(controller, {'variables_prefix': 'relay_', 'state': 'absent', 'field_prefix': 'x_'}, variables)
    assert got['args'] == {'state': 'absent', 'mynetworks': ['192.0.2.0/24'], 'field_prefix': 'x_'}


def test_every_option_but_the_host_ones_is_taken(controller):
    variables = dict(('relay_' + name, 'value') for name in model.module_argument_spec())
    got, dummy, dummy = run(controller, {'variables_prefix': 'relay_'}, variables)
    assert sorted(got['args']) == sorted(set(model.variable_options()) | {'field_prefix'})


def test_without_a_prefix_the_task_args_go_through_unchanged(controller):
    got, dummy, dummy = run(controller, {'upstreams': UPSTREAMS}, {'relay_state': 'absent'})
    assert got['args'] == {'upstreams': UPSTREAMS}


def test_the_wheels_and_the_requirements_are_copied_before_the_module_runs(controller):
    got, copied, result = run(controller, {'oauth2_wheels_from': '/ctl/wheels', 'oauth2_wheels': '/var/cache/w'}, {})
    assert copied == [('/ctl/wheels/', '/var/cache/w'), ('/role/files/oauth2-hop-requirements.txt', '/var/cache/w')]
    assert 'oauth2_wheels_from' not in got['args'] and got['args']['oauth2_wheels'] == '/var/cache/w'
    assert result['changed'] is True


def test_a_failed_copy_stops_before_the_module(controller):
    got, copied, result = run(controller, {'oauth2_wheels_from': '/ctl/wheels', 'oauth2_wheels': '/w'}, {},
                              copies={'/ctl/wheels/': {'failed': True, 'msg': 'could not find src'}})
    assert result['failed'] and result['msg'] == 'could not find src' and got == {} and len(copied) == 1


def test_empty_wheels_copy_nothing_and_wheels_need_a_host_directory(controller):
    got, copied, dummy = run(controller, {'oauth2_wheels_from': '', 'oauth2_wheels': '/w'}, {})
    assert copied == [] and got['args'] == {'oauth2_wheels': '/w'}
    with pytest.raises(controller.AnsibleActionFail, match='oauth2_wheels_from needs oauth2_wheels'):
        run(controller, {'oauth2_wheels_from': '/ctl/wheels'}, {})
