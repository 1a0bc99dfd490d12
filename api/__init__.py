"""api: the HTTP front door onto the answering pipeline.

``create_app(settings)`` (in :mod:`api.app`) builds the FastAPI application; ``python -m api``
serves it with uvicorn, or answers one question on the console with ``--ask``. One router per
capability lives in :mod:`api.routes`; the chat page is plain HTML/JS in ``api/static``.
"""
