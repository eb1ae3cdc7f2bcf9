"""The OKR services (nameko), one subpackage each: goal, progress, reporting, notification."""
