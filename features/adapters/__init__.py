"""Adapters that turn public real-world ranking data into the ranking-dataset format."""
