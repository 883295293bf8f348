"""The stages of a run, one module each, in data-flow order: teach, curate, train, evaluate (the report is
ftcot.report). Each has `run(ctx) -> summary`; ftcot.pipeline holds the context they share, the stage table and
the fingerprints that decide what reruns."""
