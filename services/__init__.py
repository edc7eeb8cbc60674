"""The domain: plain values in, results out; no request, cookie, redirect or template of
the web (README "Layout"; ruff and import-linter check it). One package per flow."""
