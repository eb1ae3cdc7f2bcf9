"""The ``okr`` command line: the top layer, above the services (okr_services) and the
library (okr_shared); nothing imports it. One module per command group (main.py adds them
all to ``okr``); docs/architecture.md."""
