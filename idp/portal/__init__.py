"""The citizen's own pages: profile, sessions, security (MFA), consents, businesses."""
