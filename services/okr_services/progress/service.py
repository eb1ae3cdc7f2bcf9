"""The progress service: check-ins on key results and their corrections.

Same conventions as the goal service (see okr_services.goal.service): keyword arguments
are the command's fields plus an optional ``command_id``; context data must carry
``actor`` (who checks in: it becomes the check-in's author) and ``tenant_id``. Check-ins
live on the key result's stream, so two people checking in at once are both stored, one
after the other (the second decision is retried on the new version).

    nameko run --config services/config.yaml okr_services.progress.service
"""

from okr_shared.domain.commands import CorrectCheckIn, RecordCheckIn
from okr_services.dependencies import AggregateService
from okr_services.rpc import command, query


class ProgressService(AggregateService):
    name = "progress"

    @command
    def record_check_in(self, **fields):
        """RecordCheckIn: check_in_id?, key_result_id, value, confidence (0-10),
        effective_date? (default today), comment?"""
        return self.aggregates.run(RecordCheckIn, fields, self.caller)

    @command
    def correct_check_in(self, **fields):
        """CorrectCheckIn: check_in_id?, corrects_check_in_id, key_result_id, value,
        confidence, reason, effective_date? (default: the corrected one's), comment?"""
        return self.aggregates.run(CorrectCheckIn, fields, self.caller)

    @query
    def get_key_result(self, key_result_id=None):
        """The key result's current state with every check-in (with its ``version``)."""
        return self.aggregates.read("kr", key_result_id, self.caller)
