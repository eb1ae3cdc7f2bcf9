"""The API gateway: authentication (``auth``: API keys and bearer tokens), authorisation
by role (``policy``); the ``okr keys`` command over ``auth`` is okr_cli/keys.py.
docs/adr/0012-authentication-and-roles.md."""
