"""Spark: the session builder, Kafka/file -> Parquet ingestion, lake reads and compaction."""
