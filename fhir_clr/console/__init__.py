"""The plan staff console: server-rendered HTML pages under ``/console`` (worklist, referral timeline, imports,
compliance charts, subscriptions, quick metrics), built only from the engine's searches and reads."""
