"""The entrypoint kind label of okr_shared.observability.nameko.Observed."""

from okr_shared.observability.nameko import entrypoint_kind
from okr_services.progress.service import ProgressService


def test_the_services_rpc_entrypoints_are_rpc_whatever_their_class():
    # okr_services.rpc's command/query use a subclass of nameko's Rpc (replies
    # without publisher confirms): still kind "rpc" — the access line and the
    # okr_entrypoint_duration_seconds{kind="rpc"} series depend on it
    entrypoints = ProgressService.record_check_in.nameko_entrypoints
    assert entrypoints and {entrypoint_kind(e) for e in entrypoints} == {"rpc"}
