"""The command line: argument parsing, commands, what they print, log set-up."""
