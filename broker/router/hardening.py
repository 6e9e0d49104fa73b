"""Placeholder, filled in below."""
def install(hello_timeout: float) -> None:
    pass
