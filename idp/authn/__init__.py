"""How people prove who they are: password now; TOTP and certificates build on this."""
