"""Paper-metadata REST microservice."""
