"""Views of the packages blueprint."""
