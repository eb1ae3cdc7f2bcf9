"""freeze_startup_objects (okr_shared.runtime): the objects alive at start-up leave the
garbage collector's generations once per process (the services, relay and gateway call
it after starting)."""

import subprocess
import sys

CODE = """
import gc
from okr_shared.runtime import freeze_startup_objects
assert gc.get_freeze_count() == 0
freeze_startup_objects()
first = gc.get_freeze_count()
junk = [object() for _ in range(1000)]
freeze_startup_objects()
print(first > 1000, gc.get_freeze_count() == first)
"""


def test_startup_objects_are_frozen_once():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
