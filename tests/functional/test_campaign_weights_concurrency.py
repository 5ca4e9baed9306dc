"""Two editors at once on PostgreSQL: each sets a different variant's weight to 0 in the same moment. Saved one
after the other, the second sees the first's change and is refused, so the campaign keeps a weighted variant
and stays on the readers' pages."""
from __future__ import annotations

import threading
import time

from sqlalchemy import delete, select, text

from donations.campaigns.models import Allocation, Campaign, CampaignVariant
from donations.extensions import db
from donations.staff import operations as ops
from tests.conftest import run_threads


def test_two_editors_cannot_take_the_last_weights_away_together(postgres, committing_app):
    app = committing_app
    with app.test_request_context():
        campaign = ops.create_campaign(slug="weights-race", name="Race", language="en")
        ops.create_variant(campaign, key="b", name="B", weight=50)
        campaign.active, campaign.allocation = True, Allocation.SPLIT
        for variant in campaign.variants:
            variant.weight = 50
        db.session.commit()
        campaign_id = campaign.id
        variant_ids = [v.id for v in campaign.variants]
    both_read = threading.Barrier(2)

    def edit(index: int) -> str:
        with app.test_request_context():
            variant = db.session.get(CampaignVariant, variant_ids[index])
            assert [v.weight for v in variant.campaign.variants] == [50, 50]  # read before either saves
            both_read.wait()
            try:
                ops.update_variant(variant, weight=0)
                time.sleep(0.3)  # the first to save holds the campaign a moment before it commits
                db.session.commit()
                return "saved"
            except ops.NoWeightLeft:
                db.session.rollback()
                return "refused"
            finally:
                db.session.remove()

    try:
        results = run_threads(2, edit)
        assert sorted(results) == ["refused", "saved"], results
        with app.app_context():
            weights = db.session.scalars(select(CampaignVariant.weight)
                                         .where(CampaignVariant.campaign_id == campaign_id)).all()
            assert sorted(weights) == [0, 50]
    finally:
        with app.app_context(), db.engine.begin() as conn:  # audit entries are append-only for the app's ORM
            conn.execute(text("DELETE FROM audit_entries WHERE object_type IN ('campaign', 'campaign_variant')"))
            conn.execute(delete(CampaignVariant).where(CampaignVariant.campaign_id == campaign_id))
            conn.execute(delete(Campaign).where(Campaign.id == campaign_id))
