"""The citizen's own pages under /account: profile, security, businesses, consents."""
