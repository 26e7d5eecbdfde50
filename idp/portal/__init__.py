"""The citizen's own pages (profile, security, consents, businesses), one blueprint module each."""
