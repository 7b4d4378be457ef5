"""The platform's state: SQLAlchemy models and the commands the DB writer executes."""
