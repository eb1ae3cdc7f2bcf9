"""``python -m okr_cli``: the ``okr`` command (the messages say ``okr ...``, as installed)."""

from .main import main

main(prog_name="okr")
