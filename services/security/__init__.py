"""What guards every flow: the security log and its emails, the pause after wrong codes and
the send caps (throttle), and who is asking (client, browser labels)."""
