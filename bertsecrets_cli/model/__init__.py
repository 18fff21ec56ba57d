"""The only code that touches transformers internals: loading, tokenising, attention interception."""
