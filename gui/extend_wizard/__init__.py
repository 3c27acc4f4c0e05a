"""Edit › Resource › Extend Resource Hierarchy: the wizard.

Pages, as a LifeKeeper administrator knows them (DOMAIN.md):

1. **Extend Resource Hierarchy**: what the wizard does, and two ways on: *Next* walks
   through the prompts, *Accept Defaults* takes every default and extends at once (every
   check still runs; on a problem it stops on that page with the field highlighted).
2. **Pre-Extend**: Template Server, Tag to Extend (both only when opened from the menu),
   Target Server, Switchback Type, Template Priority (initial extend only), Target
   Priority. Every field is checked as it is edited, its message right under it.
3. **Pre-Extend Checks**: run on a worker; "Pre-extend checks were successful" or every
   problem; then the information boxes: each tag and what it becomes on the target.
4. **Extend** (one per DataKeeper resource): Mount Point and Root Tag (with a protected
   filesystem on top), DataKeeper Resource Tag, Bitmap File (path, Browse, or None),
   with the filesystem type of the chosen location shown as it is typed.
5. **Extending**: each step of the plan ticked as it completes, a progress bar, the log.
   It cannot be closed half way; Cancel asks, and a cancelled extend is rolled back.
6. **Finish**: the result; *Done* closes.

Every rule comes from :mod:`core.rules.extend` (pure) and every action from
:mod:`core.operations.extend`; this package only shows what core returns. What the rules
need to know about the target's disks is gathered on workers (the GUI thread never
probes a disk): before the wizard opens (:func:`prepare`), when the target changes, and
for each check of a page that names a path; the newest answer wins.

The package: ``pre_extend`` (pages 1–2), ``checks`` (3), ``datakeeper`` (4), ``progress`` (5–6),
``prepare`` (before it opens), ``wizard`` (the QWizard).
"""

from gui.extend_wizard.common import Page
from gui.extend_wizard.prepare import Prepared, prepare, prepare_now
from gui.extend_wizard.wizard import ExtendWizard
from gui.field_messages import (  # where they were; the other forms use them
    ERROR_STYLE,
    MESSAGE_WIDTH,
    NOTE_STYLE,
    OK_STYLE,
    error_label,
    show_field_problems,
)

__all__ = [
    "ERROR_STYLE",
    "MESSAGE_WIDTH",
    "NOTE_STYLE",
    "OK_STYLE",
    "ExtendWizard",
    "Page",
    "Prepared",
    "error_label",
    "prepare",
    "prepare_now",
    "show_field_problems",
]
