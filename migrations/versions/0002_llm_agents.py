"""llm agents: the record of every model call, idea rationale and duplicates, trial analyses

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("surface", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("template", sa.String(), nullable=False),
        sa.Column("prompt", sa.JSON(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("dollars", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("idea_id", sa.Integer(), nullable=True),
        sa.Column("trial_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name="fk_llm_calls_campaign_id_campaigns", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["idea_id"], ["ideas.id"], name="fk_llm_calls_idea_id_ideas"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_llm_calls_trial_id_trials"),
        sa.PrimaryKeyConstraint("id", name="pk_llm_calls"),
    )
    op.create_index("ix_llm_calls_campaign_id_role", "llm_calls", ["campaign_id", "role"])
    op.create_index("ix_llm_calls_idea_id", "llm_calls", ["idea_id"])
    op.create_index("ix_llm_calls_trial_id", "llm_calls", ["trial_id"])
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("agents", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("ideas") as batch:
        batch.add_column(sa.Column("rationale", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("llm_call_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("duplicate_of", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_ideas_llm_call_id_llm_calls", "llm_calls", ["llm_call_id"], ["id"])
        batch.create_foreign_key("fk_ideas_duplicate_of_ideas", "ideas", ["duplicate_of"], ["id"])
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("analysis", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("patches") as batch:
        batch.add_column(sa.Column("llm_call_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_patches_llm_call_id_llm_calls", "llm_calls", ["llm_call_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("patches") as batch:
        batch.drop_constraint("fk_patches_llm_call_id_llm_calls", type_="foreignkey")
        batch.drop_column("llm_call_id")
    with op.batch_alter_table("trials") as batch:
        batch.drop_column("analysis")
    with op.batch_alter_table("ideas") as batch:
        batch.drop_constraint("fk_ideas_duplicate_of_ideas", type_="foreignkey")
        batch.drop_constraint("fk_ideas_llm_call_id_llm_calls", type_="foreignkey")
        batch.drop_column("duplicate_of")
        batch.drop_column("llm_call_id")
        batch.drop_column("rationale")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("agents")
    op.drop_index("ix_llm_calls_trial_id", table_name="llm_calls")
    op.drop_index("ix_llm_calls_idea_id", table_name="llm_calls")
    op.drop_index("ix_llm_calls_campaign_id_role", table_name="llm_calls")
    op.drop_table("llm_calls")
