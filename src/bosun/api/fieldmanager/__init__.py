"""Field ownership (``metadata.managedFields``) and server-side apply.

:mod:`.manager` holds the logic (track an update, apply a configuration), :mod:`.fields`
reads an object's fields by its kind's merge rules, :mod:`.paths` is the FieldsV1 format.
"""

from bosun.api.fieldmanager.manager import APPLY, UPDATE, Conflicts, apply, track_update

__all__ = ["APPLY", "UPDATE", "Conflicts", "apply", "track_update"]
