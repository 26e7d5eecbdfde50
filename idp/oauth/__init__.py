"""OAuth 2.0 / OpenID Connect: the only package that imports Authlib."""
