"""Views, one blueprint per audience or flow. `web` holds what they share."""
