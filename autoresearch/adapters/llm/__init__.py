"""LLM providers behind one interface: `base` (what agents speak) and `providers` (OpenAI, Anthropic,
OpenAI-compatible). Import them from their modules: re-exporting `providers` here would load both SDKs
(about a second) for every user of `base`."""
