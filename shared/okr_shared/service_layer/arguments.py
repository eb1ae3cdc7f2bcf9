"""From an RPC call's keyword arguments to a command: every name checked against the
command's fields, every required field present, a missing id of a new aggregate filled
in. The values themselves are the deciders' to validate (they name the field)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from ..domain import commands as c
from ..domain.errors import ValidationError

#: The field holding the id of what a command creates; a caller may leave it out and
#: gets a fresh id back in the reply.
NEW_ID_FIELDS: Mapping[type, str] = {
    c.PlanCycle: "cycle_id",
    c.CreateObjective: "objective_id",
    c.DefineKeyResult: "key_result_id",
    c.CreateInitiative: "initiative_id",
    c.RecordCheckIn: "check_in_id",
    c.CorrectCheckIn: "check_in_id",
    c.AddPerson: "person_id",
    c.CreateTeam: "team_id",
}


def command_from_fields(command_cls: type, fields: Mapping, new_id: Callable[[], str]):
    """``command_cls(**fields)``, or ValidationError naming the unknown or missing field.
    ``new_id()`` supplies the id of a new aggregate the caller left out or empty."""
    known = {f.name: f for f in dataclasses.fields(command_cls)}
    for name in fields:
        if name not in known:
            raise ValidationError(
                name, f"is not a field of {command_cls.__name__} (its fields: {', '.join(known)})"
            )
    values = dict(fields)
    id_field = NEW_ID_FIELDS.get(command_cls)
    if id_field is not None and values.get(id_field) in (None, ""):
        values[id_field] = new_id()
    for name, f in known.items():
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValidationError(name, f"is required by {command_cls.__name__}")
    return command_cls(**values)
