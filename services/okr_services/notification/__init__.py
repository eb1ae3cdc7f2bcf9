"""The notification service: reminders, alerts and digests on email and chat (issue 6)."""
