"""The service layer: what a request or a job does to videos, revisions, renders and events, as keyword-only
functions over a SQLAlchemy session or the `Services` container. Routes (`framemask.api.routes`) and task
handlers (`framemask.jobs`) both call it; SQLAlchemy queries live here and in `framemask.store` only.

It knows nothing about HTTP: errors are `framemask.errors` (which the API maps to 4xx) or the exceptions
defined beside the functions that raise them.
"""
