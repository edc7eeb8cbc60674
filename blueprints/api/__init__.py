"""The mobile app's JSON API under /api/v1 (issue 19): sign-in with the second step and the
2-Step Verification window, on the same services as the web pages. See core.py."""

from blueprints.api import sign_in, two_step  # noqa: F401 (their routes join the blueprint)
from blueprints.api.core import answers_api, bp, error_response, spec_document

__all__ = ["answers_api", "bp", "error_response", "spec_document"]
