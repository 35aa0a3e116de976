from models.gpt import GPT  # noqa: F401
