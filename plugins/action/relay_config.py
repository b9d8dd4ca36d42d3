# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The controller's half of relay_config: the options from the play's variables, the OAuth2 hop's wheels.

With variables_prefix (the relay role sets relay_), every option the task does not give comes from the
variable named by the prefix and the option (relay_upstreams for upstreams) where the play defines it
(null or empty: the option's default), so the role's task names no option and no option can be forgotten there: the model's option list is the
only list. With oauth2_wheels_from (a directory on the controller), the OAuth2 hop's wheels and pinned
requirements are copied to oauth2_wheels on the host first, for the module to install the hop offline.
Then the module runs once, as it would without this action.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail

try:  # ansible-core 2.19 on: a template that resolves to omit raises; before, it gives the omit placeholder
    from ansible.errors import AnsibleValueOmittedError
    OMITTED = (AnsibleValueOmittedError,)
except ImportError:
    OMITTED = ()
from ansible.plugins.action import ActionBase

from ansible_collections.smarthost.postfix.plugins.module_utils._relay_model import variable_options

# Beside the wheels: the pinned requirements with their hashes (in the relay role's files).
REQUIREMENTS = 'oauth2-hop-requirements.txt'


class ActionModule(ActionBase):

    # The copy action of the wheels makes its own temporary directory on the host; the module run needs none
    # (pipelining), so a no-op run costs no round trips for one.
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        prefix = args.pop('variables_prefix', None)
        wheels_from = args.pop('oauth2_wheels_from', None)
        if prefix:
            for name in variable_options():
                if name in args or prefix + name not in task_vars:
                    continue
                try:
                    value = self._templar.template(task_vars[prefix + name])
                except OMITTED:
                    continue
                # Null, empty or omitted: the option's default, as when the variable is not defined.
                if value is not None and value != '' and value != task_vars.get('omit'):
                    args[name] = value
            args.setdefault('field_prefix', prefix)
        if wheels_from:
            if not args.get('oauth2_wheels'):
                raise AnsibleActionFail('oauth2_wheels_from needs oauth2_wheels, the directory on the host')
            for source in (wheels_from.rstrip('/') + '/', self._find_needle('files', REQUIREMENTS)):
                copied = self._copy(source, args['oauth2_wheels'], task_vars)
                if copied.get('failed'):
                    return dict(result, **copied)
                result['changed'] = result.get('changed', False) or copied.get('changed', False)
        module = self._execute_module(module_name='smarthost.postfix.relay_config', module_args=args, task_vars=task_vars)
        changed = result.get('changed', False) or module.get('changed', False)
        result.update(module)
        result['changed'] = changed
        return result

    def _copy(self, source, dest, task_vars):
        """ansible.builtin.copy of source (a directory's content when it ends with /) into the directory dest."""
        if source.endswith('/') and not os.path.isdir(source):
            raise AnsibleActionFail('%s is not a directory on the controller (the OAuth2 hop\'s wheels)' % source.rstrip('/'))
        task = self._task.copy()
        task.args = dict(src=source, dest=dest.rstrip('/') + '/', owner='root', group='root', mode='0644', directory_mode='0755')
        copy = self._shared_loader_obj.action_loader.get(
            'ansible.builtin.copy', task=task, connection=self._connection, play_context=self._play_context,
            loader=self._loader, templar=self._templar, shared_loader_obj=self._shared_loader_obj)
        return copy.run(task_vars=task_vars)
