"""The citizen's own pages: registration, password reset, the account home and password change
(TOTP, consents, businesses and sessions pages build on this). Views are thin: parse a form, call a
service in ``idp.accounts``, render."""
