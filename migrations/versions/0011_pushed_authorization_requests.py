"""Pushed authorization requests (RFC 9126): the requests clients push to ``/par`` until their code is issued, and the client metadata ``require_pushed_authorization_requests`` (§6).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 23:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'pushed_request',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uri_digest', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pushed_request')),
        sa.UniqueConstraint('uri_digest', name=op.f('uq_pushed_request_uri_digest')),
    )
    with op.batch_alter_table('pushed_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pushed_request_expires_at'), ['expires_at'], unique=False)
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('require_pushed_authorization_requests', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_column('require_pushed_authorization_requests')
    with op.batch_alter_table('pushed_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pushed_request_expires_at'))
    op.drop_table('pushed_request')
