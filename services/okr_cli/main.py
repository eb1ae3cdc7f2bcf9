"""The ``okr`` command: one group, every command group of this package added to it.

    okr migrate | verify | store-demo          the event store, directly (store.py)
    okr demo                                   a realistic company through the API (demo.py)
    okr board | checkin | history | replay | diff | audit | events   the public API (api.py)
    okr import FILE.csv | export --cycle C     plans, or people and teams, over the API (plan.py,
                                               directory_import.py; export TENANT FILE too)
    okr people ... | teams ...                 the directory over the API (people.py, teams.py)
    okr projections rebuild                    rebuild the reporting read models (projections.py)
    okr keys create | list | revoke            API keys of the gRPC gateway (keys.py)

Installed as the ``okr`` console script (pyproject.toml); ``python -m okr_cli`` is the same.
"""

from __future__ import annotations

import sys

import click

from . import audit, board, checkin, demo, diff, events, history, people, plan, replay, store, teams
from .api import EXIT_CODES_HELP


class OneLineErrors(click.Group):
    """The ``okr`` group: a usage error (unknown option or command, a bad or missing
    argument) is ONE line on stderr — what is wrong and where the help is — and exit 2,
    instead of click's three-line usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:  # non-standalone: click returns a ctx.exit(n)'s n (commands return nothing)
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # `okr keys`: the group's help, as click does
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else (prog_name or "okr")
            message = e.format_message().rstrip(".")
            click.echo(f"error: {message[:1].lower()}{message[1:]} — see `{where} --help`", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


class LazyGroup(click.Group):
    """A group whose commands are imported only when one is used: ``okr projections``
    and ``okr keys`` pull in the services' code (nameko and eventlet with it), which the
    other commands do not need."""

    def __init__(self, name: str, module: str, group: str, commands: tuple[str, ...], **kwargs):
        super().__init__(name, **kwargs)
        self.module, self.group, self.names = module, group, commands

    def list_commands(self, ctx):
        return list(self.names)

    def get_command(self, ctx, name):
        if name not in self.names:
            return None
        import importlib

        return getattr(importlib.import_module(self.module), self.group).get_command(ctx, name)


@click.group(cls=OneLineErrors)
def main() -> None:
    """okr — the OKR platform's command line."""


for command in (*store.STORE_COMMANDS, demo.demo_command, board.board_command, checkin.checkin_command,
                history.history_command, replay.replay_command, diff.diff_command, audit.audit_group,
                events.events_group, people.people_group, teams.teams_group, *plan.PLAN_COMMANDS):
    main.add_command(command)
main.help = (main.help or "") + "\n\n" + EXIT_CODES_HELP
main.add_command(LazyGroup("projections", "okr_cli.projections", "projections_group", ("rebuild",),
                           help="The reporting read models (projections)."))
main.add_command(LazyGroup("keys", "okr_cli.keys", "keys_group", ("create", "list", "revoke"),
                           help="API keys of the gRPC gateway: create (shown once), list, revoke."))
