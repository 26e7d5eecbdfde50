"""Accounts: departments, officials, businesses and representation, TOTP and recovery codes,
one-time verification codes, import progress; the acting-for business on sessions, codes and tokens.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 23:27:55.060461

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # reviewed by hand
    op.create_table('department',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_department')),
    sa.UniqueConstraint('code', name=op.f('uq_department_code'))
    )
    op.create_table('import_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('file_digest', sa.String(length=64), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('lines_done', sa.Integer(), nullable=False),
    sa.Column('imported', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_run')),
    sa.UniqueConstraint('file_digest', name=op.f('uq_import_run_file_digest'))
    )
    op.create_table('verification_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('destination_index', sa.String(length=64), nullable=False),
    sa.Column('destination_enc', sa.String(length=512), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('consumed_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_verification_code_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_code'))
    )
    with op.batch_alter_table('verification_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verification_code_destination_index'), ['destination_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_verification_code_expires_at'), ['expires_at'], unique=False)

    op.create_table('business',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=32), nullable=False),
    sa.Column('uscc', sa.String(length=18), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('representative_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['representative_id'], ['person.id'], name=op.f('fk_business_representative_id_person')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_business')),
    sa.UniqueConstraint('public_id', name=op.f('uq_business_public_id')),
    sa.UniqueConstraint('uscc', name=op.f('uq_business_uscc'))
    )
    with op.batch_alter_table('business', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_business_representative_id'), ['representative_id'], unique=False)

    op.create_table('official',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_official_department_id_department'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_official_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_official')),
    sa.UniqueConstraint('person_id', 'department_id', name=op.f('uq_official_person_id'))
    )
    with op.batch_alter_table('official', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_official_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_official_person_id'), ['person_id'], unique=False)

    op.create_table('recovery_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_recovery_code_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_code')),
    sa.UniqueConstraint('code_digest', name=op.f('uq_recovery_code_code_digest'))
    )
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_code_person_id'), ['person_id'], unique=False)

    op.create_table('totp_credential',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('secret_enc', sa.String(length=255), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('last_step', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_totp_credential_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_totp_credential')),
    sa.UniqueConstraint('person_id', name=op.f('uq_totp_credential_person_id'))
    )
    op.create_table('representation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('business_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('granted_by_id', sa.Integer(), nullable=True),
    sa.Column('valid_from', sa.DateTime(), nullable=False),
    sa.Column('valid_until', sa.DateTime(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['business_id'], ['business.id'], name=op.f('fk_representation_business_id_business'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['granted_by_id'], ['person.id'], name=op.f('fk_representation_granted_by_id_person')),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_representation_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_representation'))
    )
    with op.batch_alter_table('representation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_representation_business_id'), ['business_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_representation_person_id'), ['person_id'], unique=False)

    with op.batch_alter_table('authorization_code', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claims_request', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('representation_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_authorization_code_representation_id_representation'), 'representation', ['representation_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sector_identifier', sa.String(length=255), nullable=True))

    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identity_verified_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('identity_method', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('password_changed_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('sso_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acting_representation_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_sso_session_acting_representation_id_representation'), 'representation', ['acting_representation_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claims_request', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('representation_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_token_representation_id_representation'), 'representation', ['representation_id'], ['id'], ondelete='SET NULL')



def downgrade():
    # reviewed by hand
    with op.batch_alter_table('token', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_token_representation_id_representation'), type_='foreignkey')
        batch_op.drop_column('representation_id')
        batch_op.drop_column('claims_request')

    with op.batch_alter_table('sso_session', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_sso_session_acting_representation_id_representation'), type_='foreignkey')
        batch_op.drop_column('acting_representation_id')

    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('identity_method')
        batch_op.drop_column('identity_verified_at')

    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_column('sector_identifier')

    with op.batch_alter_table('authorization_code', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_authorization_code_representation_id_representation'), type_='foreignkey')
        batch_op.drop_column('representation_id')
        batch_op.drop_column('claims_request')

    with op.batch_alter_table('representation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_representation_person_id'))
        batch_op.drop_index(batch_op.f('ix_representation_business_id'))

    op.drop_table('representation')
    op.drop_table('totp_credential')
    with op.batch_alter_table('recovery_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_code_person_id'))

    op.drop_table('recovery_code')
    with op.batch_alter_table('official', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_official_person_id'))
        batch_op.drop_index(batch_op.f('ix_official_department_id'))

    op.drop_table('official')
    with op.batch_alter_table('business', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_business_representative_id'))

    op.drop_table('business')
    with op.batch_alter_table('verification_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verification_code_expires_at'))
        batch_op.drop_index(batch_op.f('ix_verification_code_destination_index'))

    op.drop_table('verification_code')
    op.drop_table('import_run')
    op.drop_table('department')
