"""Signing in from the mobile app: the password, the second step, signing out."""
