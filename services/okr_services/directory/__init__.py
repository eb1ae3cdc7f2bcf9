"""The directory service: people and teams as event-sourced aggregates, their commands
over RPC and the read model they are queried from (``service``, ``readmodel``,
``queries``; docs/adr/0033-the-directory-people-and-teams-as-event-sourced-aggregates.md)."""
