"""Teachers: the completion record type and the backends that produce completions."""
