from simplifier.cli import entry

entry()
