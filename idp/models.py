"""Import every model so metadata (and Alembic autogenerate) sees all tables."""
from .accounts.models import Business, Department, ImportRun, Official, Person, Representation  # noqa: F401
from .audit.models import AuditEvent  # noqa: F401
from .authn.models import LoginThrottle, RecoveryCode, TotpCredential, VerificationCode  # noqa: F401
from .pki.models import Certificate, CertificateRevocationList  # noqa: F401
from .seals.models import IssuedTimestamp, Seal, SealApplication, SealAuthorization  # noqa: F401
from .oauth.models import AuthorizationCode, Client, Consent, Token, UsedAssertion  # noqa: F401
from .sessions.models import LogoutDelivery, SessionClient, SsoSession  # noqa: F401
