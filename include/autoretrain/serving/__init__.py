"""Serving: the FastAPI prediction service on the champion, its routing, hot reload and the prediction log.

``python -m autoretrain.serving`` (or ``autoretrain serve``) runs it with uvicorn
(:func:`autoretrain.serving.server.run`), one worker per process; run more processes behind a load
balancer to scale: routing is sticky across them.
"""
