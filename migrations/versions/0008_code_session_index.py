"""Retention (``idp prune``): an index on the authorization code's session, so deleting an ended session finds the codes that name it without reading the whole table (its foreign key sets them to NULL).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 19:20:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('authorization_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_authorization_code_session_id'), ['session_id'], unique=False)


def downgrade():
    with op.batch_alter_table('authorization_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_authorization_code_session_id'))
