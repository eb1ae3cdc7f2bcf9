"""Seeding: a demo company's plan (company.py) sent through the public gRPC API, as the
GoalService / ProgressService calls of an admin key — the same calls any client makes,
so the gateway checks and stores them as it does every other (docs/adr/0016).

Only the generated stubs and grpc (imported when a seeding runs): a client of the API,
used by ``okr demo`` (okr_cli/demo.py) and ``make run`` (services/okr_services/run.py).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields

from .company import Plan, Step

_ENUMS = {"cadence": "CADENCE_", "level": "OBJECTIVE_LEVEL_", "kind": "KEY_RESULT_KIND_"}
_PROGRESS = {"RecordCheckIn", "CorrectCheckIn"}


def to_request(command, command_id: str):
    """The gRPC request of a domain command (same field names; enums prefixed; unset
    optional and empty oneof fields left out)."""
    from google.protobuf.json_format import ParseDict

    from okr.v1 import goal_pb2, progress_pb2

    name = type(command).__name__
    cls = getattr(progress_pb2 if name in _PROGRESS else goal_pb2, f"{name}Request")
    body = {}
    for f in fields(command):
        value = getattr(command, f.name)
        if value is None or (f.name.startswith("parent_") and f.name != "parent_cycle_id" and not value):
            continue
        body[f.name] = _ENUMS[f.name] + value if f.name in _ENUMS else value
    body["command_id"] = command_id
    return ParseDict(body, cls())


class SeedError(Exception):
    """Seeding stopped: ``grpc_error`` is the RpcError of the refused call (or None)."""

    def __init__(self, message: str, grpc_error=None, step: Step | None = None):
        super().__init__(message)
        self.grpc_error, self.step = grpc_error, step


@dataclass
class SeedResult:
    calls: int = 0
    already_stored: int = 0
    seconds: float = 0.0


_RETRIED = ("ABORTED", "DEADLINE_EXCEEDED", "UNAVAILABLE")


def seed_company(address: str, key: str, plan: Plan, *, workers: int = 8, timeout: float = 10.0, channel=None,
         progress=None) -> SeedResult:
    """Send ``plan`` to the gateway at ``address`` with API key ``key`` (an admin of the
    tenant to seed). ``progress(done, total)`` is called after each call (from worker
    threads, serialised). Retries a call refused as ABORTED / DEADLINE_EXCEEDED /
    UNAVAILABLE (with its command_id: safe) a few times once the API has answered.
    Raises SeedError: the first call finding the tenant seeded differently (rule
    cycle_exists), or any other refusal (grpc_error set)."""
    import grpc

    from okr.v1 import goal_pb2_grpc, progress_pb2_grpc

    own = channel is None
    channel = channel or grpc.insecure_channel(address)
    stubs = {"goal": goal_pb2_grpc.GoalServiceStub(channel),
             "progress": progress_pb2_grpc.ProgressServiceStub(channel)}
    metadata = (("authorization", f"ApiKey {key}"),)
    result, lock = SeedResult(), threading.Lock()
    total = sum(1 for _ in plan.steps())
    answered = threading.Event()
    stop = threading.Event()
    started = time.perf_counter()

    def call(step: Step):
        if stop.is_set():
            raise SeedError("stopped")
        name = type(step.command).__name__
        method = getattr(stubs["progress" if name in _PROGRESS else "goal"], name)
        request = to_request(step.command, plan.command_id(step))
        for attempt in range(1, 5):
            try:
                reply = method(request, metadata=metadata, timeout=timeout)
                break
            except grpc.RpcError as e:
                if e.code().name in _RETRIED and answered.is_set() and attempt < 4:
                    time.sleep(0.2 * attempt)
                    continue
                raise SeedError(str(e.details() or e.code().name), e, step) from None
        answered.set()
        with lock:
            result.calls += 1
            result.already_stored += bool(reply.already_stored)
            if progress is not None:
                progress(result.calls, total)
        return reply

    def run_task(task: list[Step]) -> None:
        for step in task:
            call(step)

    try:
        for phase in plan.phases:
            if len(phase) == 1 or workers <= 1:
                for task in phase:
                    run_task(task)
                continue
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="okr-demo") as pool:
                futures = [pool.submit(run_task, task) for task in phase]
                try:
                    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                except BaseException:  # Ctrl-C: the workers stop before their next call
                    stop.set()
                    raise
                failed = [f for f in done if f.exception() is not None]
                if failed:
                    stop.set()
                    wait(futures)
                    errors = [f.exception() for f in futures if f.exception() is not None]
                    real = [e for e in errors if not (isinstance(e, SeedError) and str(e) == "stopped")]
                    raise (real or errors)[0]
    finally:
        result.seconds = time.perf_counter() - started
        if own:
            channel.close()
    return result
