"""``python -m okr_services.relay``: see okr_services.relay.main."""

import sys

from okr_services.relay.main import main

sys.exit(main())
