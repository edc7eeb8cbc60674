"""What admins do: the People directory and resetting a person's 2-Step Verification."""
