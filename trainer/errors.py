"""The one exception type for mistakes a user can fix: the CLI prints it as one line
and exits with status 2."""


class UserError(Exception):
  """A bad gin file or binding, layout, corpus, checkpoint or argument."""
