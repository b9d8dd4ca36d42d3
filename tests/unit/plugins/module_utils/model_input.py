# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The relay model's input as the tests give it: load() with a default upstream list, and its refusals.

Each test file binds its own default upstreams (functools.partial) and passes only what a case changes.
"""

from __future__ import annotations

import pytest

from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model


def load(default_upstreams, **params):
    """The Relay that load() makes of params (default_upstreams unless params give upstreams)."""
    params.setdefault('upstreams', default_upstreams)
    return model.load(params, 'relay_')


def refused(default_upstreams, **params):
    """The messages load() gives for params (default_upstreams unless params give upstreams)."""
    params.setdefault('upstreams', default_upstreams)
    with pytest.raises(model.InputError) as failure:
        model.load(params, 'relay_')
    return failure.value.errors


def one_error(default_upstreams, **params):
    """The one message load() gives for params."""
    errors = refused(default_upstreams, **params)
    assert len(errors) == 1, errors
    return errors[0]
