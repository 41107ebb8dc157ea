"""Datasets: sources (file, HTTP, S3, SQL), preparation (de-duplication, split) and validation."""
