"""Import every model so metadata (and Alembic autogenerate) sees all tables."""
from .accounts.models import Person  # noqa: F401
from .audit.models import AuditEvent  # noqa: F401
from .authn.models import LoginThrottle  # noqa: F401
from .oauth.models import AuthorizationCode, Client, Consent, Token, UsedAssertion  # noqa: F401
from .sessions.models import LogoutDelivery, SessionClient, SsoSession  # noqa: F401
