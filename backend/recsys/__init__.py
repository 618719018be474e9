"""Pure recommender core: data sets, algorithms, cross-validation, metrics, top-N and artifacts.

Nothing here imports FastAPI, SQLAlchemy, Celery or Kafka. Functions take frames, arrays and paths
and return frozen dataclasses.
"""
