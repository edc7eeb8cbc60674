"""Sending: email through SendGrid, text messages through Vonage, or the outbox."""
