"""Logout: pending back-channel deliveries (stored before they are attempted), front-channel logout URIs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 22:35:48.239707

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    # reviewed by hand
    op.create_table('logout_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('uri', sa.String(length=512), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=False),
    sa.Column('sub', sa.String(length=64), nullable=False),
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_logout_delivery')),
    sa.UniqueConstraint('jti', name=op.f('uq_logout_delivery_jti'))
    )
    with op.batch_alter_table('logout_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_logout_delivery_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_logout_delivery_next_attempt_at'), ['next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_logout_delivery_status'), ['status'], unique=False)

    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frontchannel_logout_uri', sa.String(length=512), nullable=True))

    # The expiry sweep finds sessions past their idle or absolute expiry.
    with op.batch_alter_table('sso_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_session_idle_expires_at'), ['idle_expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sso_session_absolute_expires_at'), ['absolute_expires_at'], unique=False)



def downgrade():
    with op.batch_alter_table('sso_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_session_absolute_expires_at'))
        batch_op.drop_index(batch_op.f('ix_sso_session_idle_expires_at'))

    # reviewed by hand
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_column('frontchannel_logout_uri')

    with op.batch_alter_table('logout_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_logout_delivery_status'))
        batch_op.drop_index(batch_op.f('ix_logout_delivery_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_logout_delivery_client_id'))

    op.drop_table('logout_delivery')
