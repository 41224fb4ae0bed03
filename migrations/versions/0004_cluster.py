"""the cluster: distributed campaigns with a controller lease, one first trial per idea, workers;
and each trial's training curve

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("distributed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("controller", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("controller_token", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("controller_expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("curve", sa.JSON(), nullable=False, server_default="[]"))
    op.create_index(
        "uq_trials_idea_id_first",
        "trials",
        ["idea_id"],
        unique=True,
        sqlite_where=sa.text("retry_of IS NULL"),
        postgresql_where=sa.text("retry_of IS NULL"),
    )
    op.create_table(
        "workers",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("capacity", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_workers")),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index("uq_trials_idea_id_first", table_name="trials")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("curve")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("controller_expires_at")
        batch.drop_column("controller_token")
        batch.drop_column("controller")
        batch.drop_column("distributed")
