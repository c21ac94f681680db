"""``transferlab serve``: the toolkit's models and the early-warning cascade behind an HTTP API (FastAPI + uvicorn).

Optional: ``pip install "transferlab[serve]"``.  Nothing in the toolkit imports this package."""
