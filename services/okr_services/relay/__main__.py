"""``python -m okr_services.relay``: see okr_services.relay."""

import sys

from okr_services.relay import main

sys.exit(main())
