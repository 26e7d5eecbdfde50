"""The SSO session: one server-side record per browser login, referenced by an opaque cookie."""
