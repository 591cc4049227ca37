"""KFP pipeline definitions and the ``searchrank`` command-line tool."""
