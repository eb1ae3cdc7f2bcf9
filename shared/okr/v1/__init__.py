"""okr.v1: generated from protos/okr/v1 by `make proto`."""
