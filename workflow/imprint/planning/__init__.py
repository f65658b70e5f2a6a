"""Planning the workflow from its config, without torch: checks, named mappings, paths, jobs."""
