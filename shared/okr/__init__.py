"""Generated protobuf code of the okr.v1 contracts (`make proto`); only this marker is committed."""
