"""Built-in check types.  Each module is a plugin registered like an external one."""
