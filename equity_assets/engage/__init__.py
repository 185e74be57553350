"""Engagement: provider webhook events into classified replies and their effects, and consent capture."""
