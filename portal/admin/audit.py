"""Admin: the audit log."""
