"""Settings: the .env file read into one frozen object, every problem reported at once.

Every setting is declared once, in `SETTINGS` (table.py): its key, its kind (kinds.py: how the
text becomes a value and what makes it wrong), its default (a value, or `Derived` from other
settings), whether it is required or a secret, and one line of documentation. From that table
come the per-key checks, the `Settings` class and its values (settings.py), `config show`, the
unknown-key warning and the list of secrets the runner masks. Rules that span several keys (the
volume list and its REMAPPED_*_UID keys, per-service retention, where VIEW_DATASET may live, how
the passphrase is given) are the functions in `CROSS_CHECKS` (checks.py), run after every key was
parsed.

Adding a setting: one `Setting(...)` line in table.py, inside the `_section` it belongs to, then
`make env-example`: .env.example is rendered from the table (example.py, `render_env_example`:
headings, each setting's doc line and note, its example or its default commented out), and a
unit test checks that the committed file is that rendering.

`load_settings(path)` (load.py) reads the file with `dotenv_values` (os.environ is never
touched), checks everything, and either returns `(Settings, warnings)` or raises `ConfigError`
listing every problem with its key and, for multi-line values, the line.

The names the rest of the code uses are imported from here: `from management.config import X`.
"""

from management.config.checks import CROSS_CHECKS, Loading
from management.config.example import render_env_example
from management.config.kinds import (
    COMPOSE_FILES,
    PROJECT_RE,
    SCHEDULE_RE,
    SERVICE_NAME_RE,
    URL_RE,
    Derived,
    Kind,
    Setting,
    Text,
    Url,
    VolumePath,
    split_urls,
    validate_dataset_name,
)
from management.config.load import load_settings
from management.config.settings import Settings, stack_folders
from management.config.table import SETTINGS

__all__ = [
    "COMPOSE_FILES", "CROSS_CHECKS", "PROJECT_RE", "SCHEDULE_RE", "SERVICE_NAME_RE", "SETTINGS", "URL_RE", "Derived",
    "Kind", "Loading", "Setting", "Settings", "Text", "Url", "VolumePath", "load_settings", "render_env_example",
    "split_urls", "stack_folders", "validate_dataset_name",
]
