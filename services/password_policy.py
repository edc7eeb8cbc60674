"""The password rules (issue 6 extends this with the common-password list)."""

MIN_LENGTH = 12
MAX_LENGTH = 128


def problems(password: str, email: str = "") -> list[str]:
    """Every rule `password` breaks, as sentences for the person choosing it."""
    found = []
    if len(password) < MIN_LENGTH:
        found.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        found.append(f"Use at most {MAX_LENGTH} characters.")
    if email and password.strip().lower() == email.strip().lower():
        found.append("Don't use your email address as your password.")
    return found
