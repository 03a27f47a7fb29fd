"""What every stage shares, and nothing stage-specific: errors, settings, file I/O, the task
contract and the metrics. `core` imports no stage (features, training, serving, monitoring) and
no CLI; every stage and the CLI may import it. Nothing here does work at import time."""
