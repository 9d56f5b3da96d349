"""Sans-I/O protocol helpers: pure functions over header values, no Starlette, no storage."""
