"""The actor tree: the supervisor and the actors it keeps running."""
