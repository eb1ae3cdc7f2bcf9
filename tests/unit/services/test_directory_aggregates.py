"""The directory's aggregates through the shared service layer, unchanged: commands
decided and appended, a no-op stored as nothing and answered OK, states loaded back from
their snapshots equal to the fold of their streams."""

from okr_shared import domain
from okr_shared.domain import commands as c
from okr_shared.service_layer import command_executor

from .conftest import TODAY


def test_directory_commands_run_through_the_executor_and_snapshot_their_states(engine, store, call):
    executor = command_executor(engine, today=lambda: TODAY, snapshot_every=2, cache_size=0)
    try:
        for cls, fields in [
            (c.AddPerson, dict(person_id="ana", display_name="Ana", email="Ana@Example.com")),
            (c.AddPerson, dict(person_id="ben", display_name="Ben", manager_id="ana")),
            (c.UpdatePerson, dict(person_id="ben", language="zh-CN")),
            (c.GrantRole, dict(person_id="ana", role="ADMIN")),
            (c.GrantRole, dict(person_id="ana", role="AUDITOR")),
            (c.CreateTeam, dict(team_id="growth", name="Growth")),
            (c.AssignTeamLead, dict(team_id="growth", person_id="ana")),
            (c.AddTeamMember, dict(team_id="growth", person_id="ben")),
        ]:
            executor.run(cls, fields, call)
        head = store.head_position()
        reply = executor.run(c.AddTeamMember, dict(team_id="growth", person_id="ben"), call)
        assert (reply["positions"], reply["event_types"], store.head_position()) == ([], [], head)

        reply = executor.run(c.ArchiveTeam, dict(team_id="growth", reason="merged"), call)
        assert reply["event_types"] == ["okr.v1.TeamLeadRemoved", "okr.v1.TeamMemberRemoved", "okr.v1.TeamArchived"]

        for stream_id in ("person-ana", "person-ben", "team-growth"):
            events = [(e.event_type, e.data) for e in store.read_stream(stream_id, tenant_id="acme")]
            loaded = executor.repository.load(stream_id, "acme")
            assert loaded.state == domain.fold(events) and loaded.version == len(events)
            # the snapshot was written and reads back (an unreadable one would be skipped silently)
            snapshot = executor.repository.snapshots.load(stream_id, domain.SNAPSHOT_VERSION, tenant_id="acme")
            state_type = domain.STATE_TYPES[stream_id.partition("-")[0]]
            assert state_type.from_dict(snapshot.state) == domain.fold(events[:snapshot.version])
        assert executor.repository.load("person-ana", "acme").state.roles == ["ADMIN", "AUDITOR"]
        assert executor.repository.load("team-growth", "acme").state.active is False
    finally:
        executor.store.close()
