"""The command line's commands, one module each: `python -m d2l_dcgan COMMAND` (d2l_dcgan.cli)."""
