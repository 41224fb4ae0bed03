"""confirmed results: a campaign's training seed, confirmation and racing settings and its budget in
training seconds; each trial's role, the trial it re-runs, its test-split score and the record of what
it ran on

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIRST_OF_IDEA = "retry_of IS NULL AND role = 'search'"


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("train_seed", sa.BigInteger(), nullable=False, server_default="0"))
        # Campaigns from before confirmation existed resume as they were: nothing is confirmed.
        batch.add_column(sa.Column("confirm_top", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("confirm_seeds", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("race", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("seconds_budget", sa.Float(), nullable=True))
    op.execute("UPDATE campaigns SET train_seed = seed")  # they trained with their one seed
    op.drop_index("uq_trials_idea_id_first", table_name="trials")
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("role", sa.String(32), nullable=False, server_default="search"))
        batch.add_column(sa.Column("confirms", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("test_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("record", sa.JSON(), nullable=False, server_default="{}"))
        batch.create_foreign_key(op.f("fk_trials_confirms_trials"), "trials", ["confirms"], ["id"])
    op.create_index(
        "uq_trials_idea_id_first",
        "trials",
        ["idea_id"],
        unique=True,
        sqlite_where=sa.text(FIRST_OF_IDEA),
        postgresql_where=sa.text(FIRST_OF_IDEA),
    )


def downgrade() -> None:
    op.drop_index("uq_trials_idea_id_first", table_name="trials")
    op.execute("DELETE FROM trials WHERE role != 'search'")
    with op.batch_alter_table("trials") as batch:
        batch.drop_constraint(op.f("fk_trials_confirms_trials"), type_="foreignkey")
        batch.drop_column("record")
        batch.drop_column("test_score")
        batch.drop_column("confirms")
        batch.drop_column("role")
    op.create_index(
        "uq_trials_idea_id_first",
        "trials",
        ["idea_id"],
        unique=True,
        sqlite_where=sa.text("retry_of IS NULL"),
        postgresql_where=sa.text("retry_of IS NULL"),
    )
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("seconds_budget")
        batch.drop_column("race")
        batch.drop_column("confirm_seeds")
        batch.drop_column("confirm_top")
        batch.drop_column("train_seed")
