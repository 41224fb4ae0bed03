"""The LLM agents of a campaign: proposer, implementer and analyst, their prompts, budgets and novelty gate."""
