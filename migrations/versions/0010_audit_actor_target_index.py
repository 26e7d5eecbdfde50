"""Audit log lookups by who and by what: indexes on ``audit_event.actor`` and ``audit_event.target``, for ``idp audit list --actor/--target`` and a person's copy of their data (``/account/data``), which would otherwise read the whole log.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 21:35:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_target'), ['target'], unique=False)


def downgrade():
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_target'))
        batch_op.drop_index(batch_op.f('ix_audit_event_actor'))
