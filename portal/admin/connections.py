"""Admin: connections and manual-webhook field editor."""
