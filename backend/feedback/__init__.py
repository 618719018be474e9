"""Feedback from clients: clicks, views, purchases and ratings, validated and sent durably."""
