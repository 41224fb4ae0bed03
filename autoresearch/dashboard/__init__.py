"""The dashboard: pages the API's app serves beside `/api/v1`, whose scripts call the JSON API with the
session cookie a person gets by signing in with an API token."""

from autoresearch.dashboard.pages import install

__all__ = ["install"]
