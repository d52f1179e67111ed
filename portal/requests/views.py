"""Views of the requests blueprint."""
