


def load_attached(app: str, env: dict[str, str], variant: str = "attached"):
    """The module hueyapps.<app>_<variant> (attached, or durable: attached with
    durable=True) imported afresh in this process, with the
    HUEYAPP_* settings `env` in the environment while it imports (each test's own
    Huey name and storage), and the environment as it was afterwards."""
    import importlib
    import os
    import sys
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        sys.modules.pop(f"hueyapps.{app}_{variant}", None)
        return importlib.import_module(f"hueyapps.{app}_{variant}")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
