from .errors import DigitsError  # noqa: F401
