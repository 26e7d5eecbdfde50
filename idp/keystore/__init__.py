"""Signing keys in the key directory: load, publish (JWKS), rotate; and the data-protection key."""
