"""sealctl: the officials' command-line tool (certificate login, DPoP-bound calls to the hub)."""
