"""Use cases: run a campaign, run a trial, record results. They take adapters as arguments."""
