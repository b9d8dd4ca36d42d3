# -*- coding: utf-8 -*-
# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Attributes of the modules that only look (at a server, at DNS) and never change anything."""

    DOCUMENTATION = r'''
attributes:
  check_mode:
    description: Can run in check mode and return the same result as a normal run.
    support: full
    details: The module only reads, so it runs in check mode too.
  diff_mode:
    description: Returns details on what has changed.
    support: none
  idempotent:
    description: Running it again gives the same result and changes nothing.
    support: full
    details: The module never changes anything; C(changed) is always false.
'''
