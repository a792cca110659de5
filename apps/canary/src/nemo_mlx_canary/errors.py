class CanaryError(Exception):
    """A problem the user can fix: reported as one line, exit status 1."""
