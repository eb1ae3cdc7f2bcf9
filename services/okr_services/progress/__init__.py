"""progress service: check-ins and their corrections."""
