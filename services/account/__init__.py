"""Logins and what keeps them: passwords and their policy, creating logins, and the sessions
of browsers and of the mobile app."""
