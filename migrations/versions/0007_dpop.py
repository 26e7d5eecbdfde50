"""DPoP for users' tokens: a token row remembers the key its tokens are bound to (RFC 9449 §5, §6.1), an authorization code the ``dpop_jkt`` it was requested with (§10), a client whether it must always use DPoP (``dpop_bound_access_tokens``, §5.2).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 08:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('authorization_code', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dpop_jkt', sa.String(length=64), nullable=True))
    with op.batch_alter_table('token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cnf_jkt', sa.String(length=64), nullable=True))
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dpop_bound_access_tokens', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_column('dpop_bound_access_tokens')
    with op.batch_alter_table('token', schema=None) as batch_op:
        batch_op.drop_column('cnf_jkt')
    with op.batch_alter_table('authorization_code', schema=None) as batch_op:
        batch_op.drop_column('dpop_jkt')
