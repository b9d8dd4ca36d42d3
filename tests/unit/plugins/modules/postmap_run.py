# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run a module (postmap by default) as Ansible does, and ask the real postmap what a map holds."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from ansible_collections.smarthost.postfix.plugins.modules import postmap

POSTMAP = shutil.which('postmap') or '/usr/sbin/postmap'


def run_main(set_module_args, capsys, args, main=postmap.main):
    """The module's (postmap unless main says otherwise) JSON result and everything it printed."""
    set_module_args(args)
    with pytest.raises(SystemExit):
        main()
    output = capsys.readouterr().out
    return json.loads(output), output


def query(config_dir, path, key, map_type='hash'):
    """The value postmap -q finds for key, or None."""
    result = subprocess.run([POSTMAP, '-c', config_dir, '-q', key, '%s:%s' % (map_type, path)],
                            capture_output=True, text=True, check=False)
    return result.stdout.rstrip('\n') if result.returncode == 0 else None
