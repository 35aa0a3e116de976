"""Model components. Each is a gin-configurable class whose `__call__(x, context)`
creates its variables and returns a tensor of x's shape (token and channel mixers)."""
