"""Small shared UI helpers for the pages: the model picker, URL state, cached models."""
