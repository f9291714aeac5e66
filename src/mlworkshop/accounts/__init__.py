"""Accounts: who may log in, their passwords, approval and lockouts."""
