"""an index for a campaign's trials by score: a page sorted by score reads its rows in order instead of
sorting the whole campaign

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_trials_campaign_id_score_number", "trials", ["campaign_id", "score", "number"])


def downgrade() -> None:
    op.drop_index("ix_trials_campaign_id_score_number", table_name="trials")
